"""The call service: one owner for every live call, from ``start_call`` to teardown.

It adapts the pure state machine (``signaling.call_state``) to the world: it checks
eligibility, stores every change (call row, ``call_events``, system messages) before it
tells anyone, tells both participants on every socket (through an ``Outbox``), drives the
media bridge, and arms one timer per call at ``state.next_deadline()``.

Rules it keeps:

* One live call per thread and per person: the database rule (``call_already_active``)
  plus an in-memory claim taken without an ``await`` between check and claim, so two
  racing ``start_call``s cannot both pass.
* Every input to a call goes through ``LiveCall.lock``; nothing done under it blocks on a
  client (sending only queues).
* Database work happens per signalling message, never per media frame.
* A call that ends is removed at once (its claims freed); its teardown (its media: legs and
  recording, then the ``on_call_ended`` hooks) runs in a task the service owns and awaits
  at shutdown.
* A call is recorded from the moment it becomes active; a call whose recording cannot
  start, or whose media worker dies, ends ``failed`` (``MediaUnavailable``).

Who is "lost" (reconnect grace): a participant whose call socket closed or whose media
leg went ``disconnected``, ``closed``, or ``failed`` after having connected. A leg that
fails before it ever connected ends the call ``failed`` / ``ice_failed`` at once: the
network between that browser and the server does not work, and retrying would only make
both people wait. A lost participant is back when a socket of theirs re-attaches (a new
connection, or any socket sending a message for the call) while their media is up, or
when their (new) media leg connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.calls import store
from server.calls.errors import CallError, no_such_call, no_such_thread
from server.calls.join_links import join_path, make_join_token
from server.calls.live_call import LiveCall
from server.calls.reaper import end_calls_of_dead_node
from server.calls.seams import CallEndedHook, CallSocket, Outbox
from server.clock import utcnow
from server.db.models import Call, CallReport, Thread, User, new_id
from server.db.models import CallEvent as CallEventRow
from server.eligibility_snapshots import decide_ongoing, decide_start
from server.eligibility_watch import EligibilityChange
from server.media.call_media import CallMedia, MediaHost, MediaUnavailableError
from server.messages import CONTACT_DETAILS_FLAG, add_message, add_system_message
from server.review.service import decide_review
from server.settings import Settings
from signaling import ws_limits
from signaling.call_state import (
    Accept,
    CallActionNotAllowed,
    CallEventKind,
    CallInput,
    CallPhase,
    CallState,
    CallStateError,
    CallTimeouts,
    CallTransition,
    Cancel,
    ChatPosted,
    ConnectionLost,
    DeadlinesDue,
    Decline,
    EligibilityLost,
    FailureDetail,
    HangUp,
    MediaConnected,
    MediaFailed,
    MediaStateChanged,
    MediaUnavailable,
    NotACallParticipant,
    PhaseChanged,
    Reconnected,
    Reported,
    Role,
    ServerShutdown,
    advance,
    start_call,
)
from signaling.eligibility import ReasonCode
from signaling.ws_protocol import (
    Caller,
    CallStartedMessage,
    ContactDetailsWarningMessage,
    ErrorCode,
    IncomingCallMessage,
    PeerConnectionQualityMessage,
    PeerConnectionStateMessage,
    PeerMediaStateMessage,
    QualityLevel,
    call_state_message,
    chat_message,
)

log = logging.getLogger(__name__)
DEADLINE_RETRY_SECONDS = 1.0

CONTACT_DETAILS_WARNING = (
    "Sharing phone numbers, e-mail addresses or other contact details is not allowed here. "
    "This call is recorded and may be reviewed."
)
SERVER_SHUTDOWN_MESSAGE = "the server is shutting down; try again in a moment"
CLUSTER_UNAVAILABLE_MESSAGE = (
    "calls cannot be started right now (the cluster bus is unreachable); try again in a moment"
)
ALREADY_ACTIVE = (ReasonCode.CALL_ALREADY_ACTIVE.value, "A call is already going on.")


@dataclass(frozen=True, slots=True)
class ChatResult:
    message_id: str
    flags: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ReportResult:
    report_id: int
    call_id: str
    reason: str
    details: str | None
    created_at: datetime


def _ineligible(reasons: Sequence[tuple[str, str]]) -> CallError:
    text = ", ".join(code for code, _ in reasons) or "not allowed"
    return CallError(ErrorCode.INELIGIBLE, f"a video call is not possible here: {text}", reasons)


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
        self._settings = settings
        self._db = db
        self._outbox = outbox
        self._media = media
        self.node_id = node_id
        """This node: the owner recorded on the calls it starts."""
        self._bus_healthy = bus_healthy
        self.on_call_ended: list[CallEndedHook] = (
            call_ended_hooks if call_ended_hooks is not None else []
        )
        self._timeouts = CallTimeouts(
            ring=timedelta(seconds=settings.ring_timeout_seconds),
            connect=timedelta(seconds=settings.connect_timeout_seconds),
            reconnect_grace=timedelta(seconds=settings.reconnect_grace_seconds),
        )
        self._calls: dict[str, LiveCall] = {}
        self._claims: dict[str, str] = {}
        self._teardowns: set[asyncio.Task[None]] = set()
        self._socket_cleanups: set[asyncio.Task[None]] = set()
        self.transition_listeners: list[Callable[[LiveCall, CallTransition], None]] = []
        """Told (synchronously) after each stored transition: metrics, tests."""
        self._accepting = True
        self._closed = False

    # ------------------------------------------------------------------ queries

    @property
    def live_call_ids(self) -> frozenset[str]:
        return frozenset(self._calls)

    def live_call(self, call_id: str) -> LiveCall | None:
        return self._calls.get(call_id)

    def live_call_of(self, user_id: str) -> LiveCall | None:
        call_id = self._claims.get(f"user:{user_id}")
        return self._calls.get(call_id) if call_id else None

    async def settled(self) -> None:
        """Wait until every ended call's teardown (media, hooks) has finished, and
        every closed socket's clean-up."""
        while self._teardowns or self._socket_cleanups:
            await asyncio.gather(*self._teardowns, *self._socket_cleanups, return_exceptions=True)

    def run_socket_cleanup(
        self, coro: Coroutine[Any, Any, None], *, name: str
    ) -> asyncio.Task[None]:
        """Own a closed socket's clean-up: aiohttp may cancel the socket's handler task
        while it runs, and a call must still hear that the socket is gone."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._socket_cleanups.add(task)
        task.add_done_callback(self._socket_cleanups.discard)
        return task

    # ------------------------------------------------------------ start-up, shutdown

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
        self._accepting = False
        while self._calls:
            for live in list(self._calls.values()):
                try:
                    await self.apply(live, ServerShutdown())
                except CallStateError:
                    pass
                except Exception:
                    log.exception("call=%s could not be ended at shutdown", live.call_id)
                    self._finish(live)
        await self.settled()

    async def aclose(self) -> None:
        if self._closed:
            return
        await self.shutdown()
        self._closed = True

    # ------------------------------------------------------------------ core

    async def apply(self, live: LiveCall, event: CallInput) -> CallTransition:
        async with live.lock:
            return await self._apply_locked(live, event)

    def _lost_ownership(self, live: LiveCall) -> None:
        """Another node ended this call (it thought this node dead): drop it here without
        telling anyone; its media closes and what was recorded is stored."""
        if not live.closing:
            log.warning("call=%s was ended by another node; dropping it here", live.call_id)
            self._finish(live)

    async def _apply_locked(self, live: LiveCall, event: CallInput) -> CallTransition:
        now = utcnow()
        transition = advance(live.state, event, now)
        if transition.changes:
            async with self._db() as session, session.begin():
                row = await self._row(session, live.call_id)
                await store.add_changes(session, row, transition.state, transition.changes)
        self._after(live, transition)
        return transition

    async def _row(self, session: AsyncSession, call_id: str) -> Call:
        """The call's row, locked for the transaction, after checking that this node still
        owns the call under the epoch it started with (fencing: a node declared dead while
        it was paused must not act on a call another node ended)."""
        row = await session.get(Call, call_id, with_for_update=True)
        if row is None:  # the row is written before the call goes live
            raise LookupError(f"call {call_id} has no row")
        live = self._calls.get(call_id)
        if live is not None and (row.owner_node, row.owner_epoch) != (self.node_id, live.epoch):
            self._lost_ownership(live)
            raise CallError(ErrorCode.CALL_NOT_LIVE, "the call has ended")
        return row

    def _after(self, live: LiveCall, transition: CallTransition) -> None:
        """Take the new state and tell people; synchronous, so nothing can interleave."""
        before = live.state
        live.state = transition.state
        self._tell_connection_changes(live, before)
        for listener in self.transition_listeners:
            listener(live, transition)
        for change in transition.changes:
            if isinstance(change, PhaseChanged) and change.previous is not None:
                log.info(
                    "call=%s %s -> %s%s",
                    live.call_id,
                    change.previous,
                    change.phase,
                    f" ({live.state.describe()})" if change.end else "",
                )
                self._tell_both(live, call_state_message(live.state))
                if change.phase is CallPhase.ACTIVE and change.previous is CallPhase.CONNECTING:
                    live.spawn(self._start_recording(live), name=f"call-record-{live.call_id}")
        if live.state.is_live:
            live.arm_timer(lambda: self._deadline_due(live))
        elif not live.closing:
            self._finish(live)

    def _tell_connection_changes(self, live: LiveCall, before: CallState) -> None:
        """``peer_connection_state`` to the other participant when someone is lost (socket
        closed, media stopped) or back, while the call waits for them."""
        after = live.state
        if not after.is_live:
            return
        for old, new in zip(before.participants, after.participants, strict=True):
            if old.lost == new.lost:
                continue
            peer = after.peer_of(new.user_id)
            if not peer.in_call:
                continue
            self._outbox.send_to_user(
                peer.user_id,
                PeerConnectionStateMessage(
                    call_id=live.call_id,
                    user_id=new.user_id,
                    state="reconnecting" if new.lost else "connected",
                ),
            )

    def _tell_both(self, live: LiveCall, message: Any) -> None:
        for p in live.state.participants:
            self._outbox.send_to_user(p.user_id, message)

    def _finish(self, live: LiveCall) -> None:
        live.closing = True
        if self._calls.get(live.call_id) is live:
            del self._calls[live.call_id]
        for key, call_id in list(self._claims.items()):
            if call_id == live.call_id:
                del self._claims[key]
        task = asyncio.get_running_loop().create_task(
            self._teardown(live), name=f"call-teardown-{live.call_id}"
        )
        self._teardowns.add(task)
        task.add_done_callback(self._teardowns.discard)

    async def _teardown(self, live: LiveCall) -> None:
        await live.aclose()
        for hook in list(self.on_call_ended):
            try:
                await hook(live.call_id, live.recordings)
            except Exception:
                log.exception("call=%s on_call_ended hook failed", live.call_id)
        log.info("call=%s torn down", live.call_id)

    async def _deadline_due(self, live: LiveCall) -> None:
        try:
            await self.apply(live, DeadlinesDue())
        except (CallStateError, CallError):
            pass
        except Exception:
            # A failure here (the database, say) must not leave the call ringing forever
            # with nobody to end it: try again shortly.
            log.exception(
                "call=%s acting on a deadline failed; retrying in %.0f s",
                live.call_id,
                DEADLINE_RETRY_SECONDS,
            )
            await asyncio.sleep(DEADLINE_RETRY_SECONDS)
            if live.state.is_live and not live.closing:
                live.arm_timer(lambda: self._deadline_due(live))

    async def _live(self, user_id: str, call_id: str) -> LiveCall:
        """The live call ``call_id`` if ``user_id`` takes part; a stranger learns nothing."""
        live = self._calls.get(call_id)
        if live is not None:
            if user_id not in (live.state.seller.user_id, live.state.buyer.user_id):
                raise no_such_call()
            return live
        async with self._db() as session:
            row = await session.get(Call, call_id)
        if row is None or user_id not in (row.seller_id, row.buyer_id):
            raise no_such_call()
        raise CallError(
            ErrorCode.CALL_NOT_LIVE, f"the call has ended ({row.end_reason or 'unknown'})"
        )

    # ------------------------------------------------------------------ start

    async def start_call(
        self, socket: CallSocket, thread_id: str, *, base_url: str
    ) -> CallStartedMessage:
        if not self._accepting:
            raise CallError(ErrorCode.INTERNAL_ERROR, SERVER_SHUTDOWN_MESSAGE)
        if not self._bus_healthy():
            # The other person's sockets may be on another node: a call nobody can hear
            # ring is worse than a clear "not now".
            raise CallError(ErrorCode.UNAVAILABLE, CLUSTER_UNAVAILABLE_MESSAGE)
        now = utcnow()
        async with self._db() as session:
            user = await session.get(User, socket.user_id)
            thread = await session.get(Thread, thread_id)
            if user is None or thread is None or user.id not in (thread.seller_id, thread.buyer_id):
                raise no_such_thread()
            decision = await decide_start(
                session, caller=user, thread=thread, now=now, settings=self._settings
            )
            seller_name = user.display_name
        if not decision.allowed:
            raise _ineligible([(r.code.value, r.message) for r in decision.reasons])
        seller_id, buyer_id = thread.seller_id, thread.buyer_id
        claims = (f"thread:{thread_id}", f"user:{seller_id}", f"user:{buyer_id}")
        if any(key in self._claims for key in claims):
            raise _ineligible([ALREADY_ACTIVE])
        call_id = new_id()
        for key in claims:
            self._claims[key] = call_id
        live: LiveCall | None = None
        try:
            live = await self._create(
                socket, call_id, thread_id, seller_id, buyer_id, now=now, base_url=base_url
            )
        except BaseException:
            for key in claims:
                if self._claims.get(key) == call_id:
                    del self._claims[key]
            raise
        log.info("call=%s conn=%s started, ringing", call_id, socket.id)
        live.incoming = IncomingCallMessage(
            call_id=call_id,
            thread_id=thread_id,
            caller=Caller(
                id=seller_id, display_name=seller_name[: ws_limits.MAX_DISPLAY_NAME_CHARS]
            ),
            join_url=live.join_url,
            ring_timeout_s=self._settings.ring_timeout_seconds,
        )
        self._outbox.send_to_user(buyer_id, live.incoming)
        if not self._accepting:
            # Shutdown began while this call was being set up: it must not outlive it.
            await self.apply(live, ServerShutdown())
        return CallStartedMessage(
            call_id=call_id,
            thread_id=thread_id,
            join_url=live.join_url,
            ring_timeout_s=self._settings.ring_timeout_seconds,
        )

    async def _create(
        self,
        socket: CallSocket,
        call_id: str,
        thread_id: str,
        seller_id: str,
        buyer_id: str,
        *,
        now: datetime,
        base_url: str,
    ) -> LiveCall:
        transition = start_call(
            call_id=call_id,
            thread_id=thread_id,
            seller_id=seller_id,
            buyer_id=buyer_id,
            now=now,
            timeouts=self._timeouts,
        )
        token = make_join_token(
            self._settings.secret_key.get_secret_value(), call_id=call_id, buyer_id=buyer_id
        )
        join_url = base_url.rstrip("/") + join_path(call_id, token)
        holder: list[LiveCall] = []
        media = await self._open_media(call_id, holder)
        live = LiveCall(state=transition.state, media=media, join_url=join_url)
        holder.append(live)
        try:
            async with self._db() as session, session.begin():
                row = Call(
                    id=call_id,
                    thread_id=thread_id,
                    seller_id=seller_id,
                    buyer_id=buyer_id,
                    state=CallPhase.RINGING.value,
                    created_at=now,
                    seller_consent_at=now,
                    owner_node=self.node_id,
                    owner_epoch=live.epoch,
                )
                session.add(row)
                try:
                    await session.flush()
                except IntegrityError:
                    # Another node started a call on this thread or with either person
                    # between the eligibility check and here: the database's one-live-call
                    # indexes decide, across nodes.
                    raise _ineligible([ALREADY_ACTIVE]) from None
                await store.add_changes(session, row, transition.state, transition.changes)
                if not self._outbox.is_online(buyer_id):
                    thread = await session.get(Thread, thread_id)
                    assert thread is not None
                    add_system_message(
                        session, thread, f"Incoming video call. Join: {join_url}", call_id=call_id
                    )
        except BaseException:
            await live.aclose()
            raise
        live.link(seller_id).socket = socket
        self._calls[call_id] = live
        self._after(live, transition)
        return live

    async def _open_media(self, call_id: str, holder: list[LiveCall]) -> CallMedia:
        try:
            return await self._media.open_call(
                call_id,
                on_leg_state=lambda pid, state: self._on_leg_state(holder, pid, state),
                on_failure=lambda detail: self._on_media_failure(holder, detail),
            )
        except MediaUnavailableError as exc:
            log.warning("call=%s no media capacity: %s", call_id, exc)
            raise CallError(
                ErrorCode.UNAVAILABLE, "calls cannot be placed right now; try again in a moment"
            ) from None

    async def _start_recording(self, live: LiveCall) -> None:
        """The call became active: record it from now on. Every call is recorded, so a call
        whose recording cannot start does not go on."""
        try:
            await live.media.start_recording()
        except Exception:
            log.exception("call=%s the recording could not be started", live.call_id)
            await self._media_failed(live, FailureDetail.RECORDING_FAILED)

    def _on_media_failure(self, holder: list[LiveCall], detail: FailureDetail) -> None:
        """The media host's callback (on the loop, must not block): end the call in a task."""
        if not holder or holder[0].closing:
            return
        live = holder[0]
        live.spawn(self._media_failed(live, detail), name=f"call-media-failed-{live.call_id}")

    async def _media_failed(self, live: LiveCall, detail: FailureDetail) -> None:
        with contextlib.suppress(CallStateError):
            await self.apply(live, MediaUnavailable(detail))

    # ------------------------------------------------------------ ringing inputs

    async def accept(self, socket: CallSocket, call_id: str) -> None:
        live = await self._live(socket.user_id, call_id)
        async with live.lock:
            now = utcnow()
            transition = advance(live.state, Accept(socket.user_id), now)
            async with self._db() as session:
                row = await self._row(session, call_id)
                thread = await session.get(Thread, row.thread_id)
                assert thread is not None
                decision = await decide_ongoing(
                    session, call=row, thread=thread, now=now, settings=self._settings
                )
            if not decision.allowed:
                # Nobody can join this call any more: end it, and tell the buyer why.
                await self._apply_locked(live, EligibilityLost(decision.reasons[0].code.value))
                raise _ineligible([(r.code.value, r.message) for r in decision.reasons])
            async with self._db() as session, session.begin():
                row = await self._row(session, call_id)
                row.buyer_consent_at = now
                await store.add_changes(session, row, transition.state, transition.changes)
            live.link(socket.user_id).socket = socket
            self._after(live, transition)
            seller = live.state.seller
        log.info("call=%s conn=%s accepted", call_id, socket.id)
        if not (seller.audio and seller.video):
            socket.send(self._peer_media_state(live, seller.user_id))

    async def decline(self, socket: CallSocket, call_id: str) -> None:
        await self.apply(await self._live(socket.user_id, call_id), Decline(socket.user_id))

    async def cancel(self, socket: CallSocket, call_id: str) -> None:
        await self.apply(await self._live(socket.user_id, call_id), Cancel(socket.user_id))

    async def hang_up(self, socket: CallSocket, call_id: str) -> None:
        await self.apply(await self._live(socket.user_id, call_id), HangUp(socket.user_id))

    # ------------------------------------------------------------------ media

    def _require_media_allowed(self, live: LiveCall, user_id: str, action: str) -> None:
        """Offers and candidates: a participant in the call; while ringing, the seller."""
        state = live.state
        try:
            p = state.participant(user_id)
        except NotACallParticipant:
            raise no_such_call() from None
        if not state.is_live:
            raise CallError(ErrorCode.CALL_NOT_LIVE, f"the call has ended ({state.describe()})")
        if not p.in_call or (state.phase is CallPhase.RINGING and p.role is not Role.SELLER):
            raise CallActionNotAllowed(
                f"cannot {action} before joining the call (call is {state.describe()})",
                phase=state.phase,
                end=state.end,
            )

    async def offer(self, socket: CallSocket, call_id: str, sdp: str) -> str:
        live = await self._live(socket.user_id, call_id)
        self._require_media_allowed(live, socket.user_id, "send an offer")
        answer = await live.media.accept_offer(socket.user_id, sdp)
        await self._attach(live, socket)
        return answer

    async def add_candidate(
        self,
        socket: CallSocket,
        call_id: str,
        candidate: str | None,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None:
        live = await self._live(socket.user_id, call_id)
        self._require_media_allowed(live, socket.user_id, "send ICE candidates")
        if not candidate and sdp_mid is None and sdp_mline_index is None:
            # End of candidates applies to the whole (bundled) transport.
            sdp_mline_index = 0
        await live.media.add_remote_candidate(
            socket.user_id, candidate or "", sdp_mid, sdp_mline_index
        )

    async def set_media_state(
        self, socket: CallSocket, call_id: str, *, audio: bool, video: bool
    ) -> None:
        live = await self._live(socket.user_id, call_id)
        user_id = socket.user_id
        async with live.lock:
            await self._apply_locked(live, MediaStateChanged(user_id, audio, video))
            await live.media.set_media_enabled(user_id, "audio", audio)
            await live.media.set_media_enabled(user_id, "video", video)
            peer = live.state.peer_of(user_id)
            if peer.in_call:
                self._outbox.send_to_user(peer.user_id, self._peer_media_state(live, user_id))
        await self._attach(live, socket)

    async def relay_connection_quality(
        self, socket: CallSocket, call_id: str, level: QualityLevel
    ) -> None:
        """A participant's own link quality, passed on to the other one (nothing stored)."""
        live = await self._live(socket.user_id, call_id)
        self._require_media_allowed(live, socket.user_id, "report connection quality")
        peer = live.state.peer_of(socket.user_id)
        if peer.in_call:
            self._outbox.send_to_user(
                peer.user_id,
                PeerConnectionQualityMessage(call_id=call_id, user_id=socket.user_id, level=level),
            )

    @staticmethod
    def _peer_media_state(live: LiveCall, user_id: str) -> PeerMediaStateMessage:
        p = live.state.participant(user_id)
        return PeerMediaStateMessage(
            call_id=live.call_id, user_id=user_id, audio=p.audio, video=p.video
        )

    def _on_leg_state(self, holder: list[LiveCall], user_id: str, leg_state: str) -> None:
        """The bridge's callback (on the loop, must not block): handle it in a task."""
        if not holder or holder[0].closing:
            return
        live = holder[0]
        live.spawn(
            self._handle_leg_state(live, user_id, leg_state),
            name=f"call-leg-state-{live.call_id}",
        )

    async def _handle_leg_state(self, live: LiveCall, user_id: str, leg_state: str) -> None:
        async with live.lock:
            if not live.state.is_live or live.closing:
                return
            link = live.link(user_id)
            event: CallInput
            match leg_state:
                case "connected":
                    link.media_lost = False
                    link.media_ever_connected = True
                    event = MediaConnected(user_id)
                case "disconnected":
                    link.media_lost = True
                    event = ConnectionLost(user_id, "ice_disconnected")
                case "failed" if not link.media_ever_connected:
                    event = MediaFailed(user_id, FailureDetail.ICE_FAILED)
                case "failed" | "closed":
                    link.media_lost = True
                    event = ConnectionLost(user_id, f"media_{leg_state}")
                case _:
                    return
            role = live.state.participant(user_id).role
            log.info("call=%s %s's media leg %s", live.call_id, role, leg_state)
            try:
                await self._apply_locked(live, event)
            except CallStateError as exc:
                log.info("call=%s leg state %s ignored: %s", live.call_id, leg_state, exc)

    # ------------------------------------------------------------ sockets come and go

    async def _attach(self, live: LiveCall, socket: CallSocket) -> None:
        """Make ``socket`` the participant's call socket; a lost participant may be back."""
        user_id = socket.user_id
        async with live.lock:
            if not live.state.is_live:
                return
            p = live.state.participant(user_id)
            if not p.in_call:
                return
            link = live.link(user_id)
            link.socket = socket
            if not link.socket_lost:
                return
            link.socket_lost = False
            if link.media_lost:
                return  # back when the new media leg connects
            await self._apply_locked(live, Reconnected(user_id))
            if (
                live.state.is_live
                and live.media.leg_state(user_id) == "connected"
                and not live.state.participant(user_id).media_connected
            ):
                await self._apply_locked(live, MediaConnected(user_id))
        log.info("call=%s conn=%s re-attached", live.call_id, socket.id)

    async def socket_opened(self, socket: CallSocket) -> None:
        """A new socket of a person whose call socket dropped re-attaches to the call; one
        of a buyer whose call is ringing rings too."""
        live = self.live_call_of(socket.user_id)
        if live is None:
            return
        state = live.state
        if (
            state.phase is CallPhase.RINGING
            and socket.user_id == state.buyer.user_id
            and live.incoming is not None
        ):
            socket.send(live.incoming)
            return
        if not live.link(socket.user_id).socket_lost:
            return
        try:
            await self._attach(live, socket)
        except CallStateError:
            return
        if live.state.is_live:
            socket.send(call_state_message(live.state))
            peer = live.state.peer_of(socket.user_id)
            if peer.in_call:
                socket.send(self._peer_media_state(live, peer.user_id))
                if peer.lost:
                    socket.send(
                        PeerConnectionStateMessage(
                            call_id=live.call_id, user_id=peer.user_id, state="reconnecting"
                        )
                    )

    async def socket_closed(self, socket: CallSocket) -> None:
        for live in list(self._calls.values()):
            link = live.links.get(socket.user_id)
            if link is None or link.socket is None or link.socket.id != socket.id:
                continue
            async with live.lock:
                if link.socket is None or link.socket.id != socket.id or not live.state.is_live:
                    continue
                link.socket = None
                link.socket_lost = True
                log.info("call=%s conn=%s call socket closed", live.call_id, socket.id)
                with contextlib.suppress(CallStateError):
                    await self._apply_locked(live, ConnectionLost(socket.user_id, "ws_closed"))

    # ------------------------------------------------------------------ chat, reports

    async def chat(self, socket: CallSocket, call_id: str, text: str) -> ChatResult:
        if len(text) > self._settings.message_max_chars:
            raise CallError(
                ErrorCode.INVALID_MESSAGE,
                f"chat messages are at most {self._settings.message_max_chars} characters",
            )
        live = await self._live(socket.user_id, call_id)
        user_id = socket.user_id
        async with live.lock:
            now = utcnow()
            advance(live.state, ChatPosted(user_id, "-"), now)  # refuse early, before storing
            async with self._db() as session, session.begin():
                row = await self._row(session, call_id)
                thread = await session.get(Thread, row.thread_id)
                assert thread is not None
                message = add_message(
                    session, thread, sender_id=user_id, text=text, kind="call_chat", call_id=call_id
                )
                await session.flush()
                flags = tuple(message.flags or ())
                if CONTACT_DETAILS_FLAG in flags:
                    row.contact_details_detected = True
                transition = advance(live.state, ChatPosted(user_id, message.id, flags), now)
                await store.add_changes(session, row, transition.state, transition.changes)
                created_at = message.created_at
                message_id = message.id
            self._after(live, transition)
        relayed = chat_message(
            call_id=call_id,
            message_id=message_id,
            sender_id=user_id,
            text=text,
            flags=flags,
            created_at=created_at,
        )
        for p in live.state.participants:
            # The sender's own socket gets the stored copy as its reply instead.
            self._outbox.send_to_user(p.user_id, relayed, exclude_connection=socket.id)
        if CONTACT_DETAILS_FLAG in flags:
            log.info("call=%s conn=%s chat flagged: contact details", call_id, socket.id)
        await self._attach(live, socket)
        return ChatResult(message_id, flags, created_at)

    def chat_reply(
        self, call_id: str, sender_id: str, text: str, result: ChatResult, request_id: int | None
    ) -> list[Any]:
        """The sender's messages for a chat: the stored copy, and a warning if flagged."""
        replies: list[Any] = [
            chat_message(
                call_id=call_id,
                message_id=result.message_id,
                sender_id=sender_id,
                text=text,
                flags=result.flags,
                created_at=result.created_at,
                id=request_id,
            )
        ]
        if CONTACT_DETAILS_FLAG in result.flags:
            replies.append(
                ContactDetailsWarningMessage(
                    call_id=call_id, message_id=result.message_id, message=CONTACT_DETAILS_WARNING
                )
            )
        return replies

    async def report(
        self, user_id: str, call_id: str, reason: str, details: str | None
    ) -> ReportResult:
        """Either participant, in any state including after the end; always reviewed."""
        now = utcnow()
        stored_reason = reason if not details else f"{reason}: {details}"
        extra = {"reason": reason, "details": details}
        live = self._calls.get(call_id)
        if live is not None and user_id in (live.state.seller.user_id, live.state.buyer.user_id):
            async with live.lock:
                transition = advance(live.state, Reported(user_id, reason), now)
                async with self._db() as session, session.begin():
                    row = await self._row(session, call_id)
                    report = CallReport(
                        call_id=call_id, reporter_id=user_id, reason=stored_reason, created_at=now
                    )
                    session.add(report)
                    row.reported = True
                    await store.add_changes(
                        session, row, transition.state, transition.changes, event_data=extra
                    )
                    await session.flush()
                    report_id = report.id
                self._after(live, transition)
        else:
            async with self._db() as session, session.begin():
                found = await session.get(Call, call_id, with_for_update=True)
                if found is None or user_id not in (found.seller_id, found.buyer_id):
                    raise no_such_call()
                found.reported = True
                report = CallReport(
                    call_id=call_id, reporter_id=user_id, reason=stored_reason, created_at=now
                )
                session.add(report)
                session.add(
                    CallEventRow(
                        call_id=call_id,
                        kind=CallEventKind.REPORT.value,
                        user_id=user_id,
                        at=now,
                        data={"detail": reason, **extra},
                    )
                )
                # A report makes review mandatory whether or not the end-of-call decision
                # has been drawn yet (the decision merges reasons, never drops them).
                await decide_review(session, found, self._settings)
                await session.flush()
                report_id = report.id
        log.info("call=%s reported (%s)", call_id, reason)
        return ReportResult(report_id, call_id, reason, details, now)

    # ------------------------------------------------------------------ eligibility

    async def on_eligibility_change(self, change: EligibilityChange) -> None:
        """Re-check the live calls a change touches; end those no longer eligible."""
        for live in list(self._calls.values()):
            state = live.state
            if state.thread_id not in change.thread_ids and not (
                {state.seller.user_id, state.buyer.user_id} & change.user_ids
            ):
                continue
            try:
                await self._recheck(live)
            except Exception:
                log.exception("call=%s eligibility re-check failed", live.call_id)

    async def _recheck(self, live: LiveCall) -> None:
        async with live.lock:
            if not live.state.is_live or live.closing:
                return
            now = utcnow()
            async with self._db() as session:
                row = await self._row(session, live.call_id)
                thread = await session.get(Thread, row.thread_id)
                assert thread is not None
                decision = await decide_ongoing(
                    session, call=row, thread=thread, now=now, settings=self._settings
                )
            if decision.allowed:
                return
            log.info("call=%s no longer eligible: %s", live.call_id, decision.reasons[0].code)
            await self._apply_locked(live, EligibilityLost(decision.reasons[0].code.value))
