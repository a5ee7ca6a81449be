"""The call service: one owner for every live call, from ``start_call`` to teardown.

A thin facade over the parts, each with one job, so callers (``server.ws``,
``server.cluster``, ``server.calls.commands``, ``server.api``) see one object:

* ``registry.LiveCallRegistry``: the live calls on this node and their claims;
* ``lifecycle.CallLifecycle``: applying inputs to the pure state machine
  (``signaling.call_state``) — fence, store, notify, timer, teardown;
* ``placement.CallPlacement``: starting a call, the buyer accepting, eligibility re-checks;
* ``call_sockets.CallSockets``: each participant's call socket as sockets come and go;
* ``media_legs.MediaLegs``: offers, ICE candidates, media switches, leg-state reports;
* ``chat_and_reports.ChatAndReports``: in-call chat and reports;
* ``notifications``: what the call core tells people, and its wire form.

Every input to a call goes through ``LiveCall.lock``. A call is recorded from the moment
it becomes active; a call whose recording cannot start, or whose media worker dies, ends
``failed`` (``MediaUnavailable``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.calls.call_sockets import CallSockets
from server.calls.chat_and_reports import ChatAndReports, ReportResult
from server.calls.lifecycle import CallLifecycle, TransitionListener
from server.calls.live_call import LiveCall
from server.calls.media_legs import MediaLegs
from server.calls.notifications import CallNotifier, CallStarted, ChatMessagePosted
from server.calls.placement import CallPlacement
from server.calls.reaper import end_calls_of_dead_node
from server.calls.registry import LiveCallRegistry
from server.calls.seams import CallEndedHook, CallSocket, Outbox
from server.clock import utcnow
from server.eligibility_watch import EligibilityChange
from server.media.call_media import MediaHost
from server.owned_tasks import OwnedTasks
from server.settings import Settings
from signaling.call_state import Cancel, Decline, HangUp
from signaling.ws_protocol import QualityLevel

log = logging.getLogger(__name__)


class CallService:
    def __init__(
        self,
        *,
        settings: Settings,
        db: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        media: MediaHost,
        call_ended_hooks: list[CallEndedHook] | None = None,
        node_id: str = "local",
        bus_healthy: Callable[[], bool] = lambda: True,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self.node_id = node_id
        """This node: the owner recorded on the calls it starts."""
        self._calls = LiveCallRegistry()
        notify = CallNotifier(outbox)
        self._lifecycle = CallLifecycle(
            db=db,
            calls=self._calls,
            notify=notify,
            node_id=node_id,
            call_ended_hooks=call_ended_hooks if call_ended_hooks is not None else [],
        )
        self._sockets = CallSockets(calls=self._calls, lifecycle=self._lifecycle, notify=notify)
        self._media = MediaLegs(
            media=media, lifecycle=self._lifecycle, sockets=self._sockets, notify=notify
        )
        self._placement = CallPlacement(
            settings=settings,
            db=db,
            outbox=outbox,
            calls=self._calls,
            lifecycle=self._lifecycle,
            media=self._media,
            notify=notify,
            node_id=node_id,
            bus_healthy=bus_healthy,
        )
        self._chat = ChatAndReports(
            settings=settings,
            db=db,
            calls=self._calls,
            lifecycle=self._lifecycle,
            sockets=self._sockets,
            notify=notify,
        )
        # Never closed (cancelled): a socket's clean-up tells its call the socket is gone,
        # and sockets close after the service (at shutdown); ``settled`` awaits them.
        self._socket_cleanups = OwnedTasks("socket clean-ups")
        self._closed = False

    # --- queries ----------------------------------------------------------------------

    @property
    def on_call_ended(self) -> list[CallEndedHook]:
        return self._lifecycle.on_call_ended

    @property
    def transition_listeners(self) -> list[TransitionListener]:
        """Told (synchronously) after each stored transition: metrics, tests."""
        return self._lifecycle.transition_listeners

    @property
    def live_call_ids(self) -> frozenset[str]:
        return self._calls.ids

    def live_call(self, call_id: str) -> LiveCall | None:
        return self._calls.get(call_id)

    def live_call_of(self, user_id: str) -> LiveCall | None:
        return self._calls.of_user(user_id)

    async def settled(self) -> None:
        """Wait until every ended call's teardown (media, hooks) has finished, and
        every closed socket's clean-up."""
        while len(self._socket_cleanups):
            await self._socket_cleanups.wait()
            await self._lifecycle.settled()
        await self._lifecycle.settled()

    def run_socket_cleanup(
        self, coro: Coroutine[Any, Any, None], *, name: str
    ) -> asyncio.Task[None]:
        """Own a closed socket's clean-up: aiohttp may cancel the socket's handler task
        while it runs, and a call must still hear that the socket is gone."""
        task = self._socket_cleanups.spawn(coro, name=name)
        assert task is not None  # the owner is never closed
        return task

    # --- start-up, shutdown -----------------------------------------------------------

    async def end_stale_calls(self) -> int:
        """Calls the database shows live on this node were cut off when its process died:
        end them (``failed`` / ``node_lost``), telling both people and leaving the end note
        in their thread. Other nodes' calls are theirs."""
        ended = await end_calls_of_dead_node(self._db, self._outbox, self.node_id, utcnow())
        if ended:
            log.warning("ended %d call(s) left live by a previous process", len(ended))
        return len(ended)

    async def shutdown(self) -> None:
        """End every live call with ``server_shutdown`` and wait for their teardown."""
        await self._lifecycle.shutdown()
        await self.settled()

    async def aclose(self) -> None:
        if self._closed:
            return
        await self.shutdown()
        self._closed = True

    # --- commands ---------------------------------------------------------------------

    async def start_call(self, socket: CallSocket, thread_id: str, *, base_url: str) -> CallStarted:
        return await self._placement.start_call(socket, thread_id, base_url=base_url)

    async def accept(self, socket: CallSocket, call_id: str) -> None:
        await self._placement.accept(socket, call_id)

    async def decline(self, socket: CallSocket, call_id: str) -> None:
        live = await self._lifecycle.live_for(socket.user_id, call_id)
        await self._lifecycle.apply(live, Decline(socket.user_id))

    async def cancel(self, socket: CallSocket, call_id: str) -> None:
        live = await self._lifecycle.live_for(socket.user_id, call_id)
        await self._lifecycle.apply(live, Cancel(socket.user_id))

    async def hang_up(self, socket: CallSocket, call_id: str) -> None:
        live = await self._lifecycle.live_for(socket.user_id, call_id)
        await self._lifecycle.apply(live, HangUp(socket.user_id))

    async def offer(self, socket: CallSocket, call_id: str, sdp: str) -> str:
        return await self._media.offer(socket, call_id, sdp)

    async def add_candidate(
        self,
        socket: CallSocket,
        call_id: str,
        candidate: str | None,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None:
        await self._media.add_candidate(socket, call_id, candidate, sdp_mid, sdp_mline_index)

    async def set_media_state(
        self, socket: CallSocket, call_id: str, *, audio: bool, video: bool
    ) -> None:
        await self._media.set_media_state(socket, call_id, audio=audio, video=video)

    async def relay_connection_quality(
        self, socket: CallSocket, call_id: str, level: QualityLevel
    ) -> None:
        await self._media.relay_connection_quality(socket, call_id, level)

    async def chat(self, socket: CallSocket, call_id: str, text: str) -> ChatMessagePosted:
        return await self._chat.chat(socket, call_id, text)

    async def report(
        self, user_id: str, call_id: str, reason: str, details: str | None
    ) -> ReportResult:
        return await self._chat.report(user_id, call_id, reason, details)

    # --- sockets and eligibility ------------------------------------------------------

    async def socket_opened(self, socket: CallSocket) -> None:
        await self._sockets.socket_opened(socket)

    async def socket_closed(self, socket: CallSocket) -> None:
        await self._sockets.socket_closed(socket)

    async def on_eligibility_change(self, change: EligibilityChange) -> None:
        await self._placement.on_eligibility_change(change)
