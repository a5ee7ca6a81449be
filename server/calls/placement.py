"""Placing calls and keeping them allowed: ``start_call``, the buyer accepting, and the
eligibility re-check of live calls when something they depend on changes.

One live call per thread and per person: the registry's claims on this node (taken
without an ``await`` between check and claim) plus the database's one-live-call indexes
across nodes (``call_already_active``). A call's row is written before it goes live, with
this node as its owner under the call's fencing epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.calls import store
from server.calls.errors import CallError, no_such_thread
from server.calls.join_links import join_path, make_join_token
from server.calls.lifecycle import CallLifecycle
from server.calls.live_call import LiveCall
from server.calls.media_legs import MediaLegs
from server.calls.notifications import CallNotifier, CallStarted, IncomingCall, PeerMediaState
from server.calls.registry import LiveCallRegistry
from server.calls.seams import CallSocket, Outbox
from server.clock import utcnow
from server.db.models import Call, Thread, User, new_id
from server.eligibility_snapshots import decide_ongoing, decide_start
from server.eligibility_watch import EligibilityChange
from server.messages import add_system_message
from server.settings import Settings
from signaling.call_state import (
    Accept,
    CallPhase,
    CallTimeouts,
    EligibilityLost,
    ServerShutdown,
    advance,
    start_call,
)
from signaling.eligibility import ReasonCode
from signaling.ws_protocol import ErrorCode

log = logging.getLogger(__name__)

SERVER_SHUTDOWN_MESSAGE = "the server is shutting down; try again in a moment"
CLUSTER_UNAVAILABLE_MESSAGE = (
    "calls cannot be started right now (the cluster bus is unreachable); try again in a moment"
)
ALREADY_ACTIVE = (ReasonCode.CALL_ALREADY_ACTIVE.value, "A call is already going on.")


def _ineligible(reasons: Sequence[tuple[str, str]]) -> CallError:
    text = ", ".join(code for code, _ in reasons) or "not allowed"
    return CallError(ErrorCode.INELIGIBLE, f"a video call is not possible here: {text}", reasons)


class CallPlacement:
    def __init__(
        self,
        *,
        settings: Settings,
        db: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        calls: LiveCallRegistry,
        lifecycle: CallLifecycle,
        media: MediaLegs,
        notify: CallNotifier,
        node_id: str,
        bus_healthy: Callable[[], bool],
    ) -> None:
        self._settings = settings
        self._db = db
        self._outbox = outbox
        self._calls = calls
        self._lifecycle = lifecycle
        self._media = media
        self._notify = notify
        self._node_id = node_id
        self._bus_healthy = bus_healthy
        self._timeouts = CallTimeouts(
            ring=timedelta(seconds=settings.ring_timeout_seconds),
            connect=timedelta(seconds=settings.connect_timeout_seconds),
            reconnect_grace=timedelta(seconds=settings.reconnect_grace_seconds),
        )

    # --- start ------------------------------------------------------------------------

    async def start_call(self, socket: CallSocket, thread_id: str, *, base_url: str) -> CallStarted:
        if not self._lifecycle.accepting:
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
        call_id = new_id()
        if not self._calls.claim(call_id, thread_id, (seller_id, buyer_id)):
            raise _ineligible([ALREADY_ACTIVE])
        try:
            live = await self._create(
                socket, call_id, thread_id, seller_id, buyer_id, now=now, base_url=base_url
            )
        except BaseException:
            self._calls.release(call_id)
            raise
        log.info("call=%s conn=%s started, ringing", call_id, socket.id)
        live.incoming = IncomingCall(
            call_id=call_id,
            thread_id=thread_id,
            caller_id=seller_id,
            caller_name=seller_name,
            join_url=live.join_url,
            ring_timeout_s=self._settings.ring_timeout_seconds,
        )
        self._notify.to_user(buyer_id, live.incoming)
        if not self._lifecycle.accepting:
            # Shutdown began while this call was being set up: it must not outlive it.
            await self._lifecycle.apply(live, ServerShutdown())
        return CallStarted(
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
        media = await self._media.open(call_id, holder)
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
                    owner_node=self._node_id,
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
        live.call_sockets[seller_id] = socket
        self._calls.add(live)
        self._lifecycle.after_stored(live, transition)
        return live

    # --- the buyer joins --------------------------------------------------------------

    async def accept(self, socket: CallSocket, call_id: str) -> None:
        live = await self._lifecycle.live_for(socket.user_id, call_id)
        async with live.lock:
            now = utcnow()
            transition = advance(live.state, Accept(socket.user_id), now)
            async with self._db() as session:
                row = await self._lifecycle.fenced_row(session, call_id)
                thread = await session.get(Thread, row.thread_id)
                assert thread is not None
                decision = await decide_ongoing(
                    session, call=row, thread=thread, now=now, settings=self._settings
                )
            if not decision.allowed:
                # Nobody can join this call any more: end it, and tell the buyer why.
                await self._lifecycle.apply_locked(
                    live, EligibilityLost(decision.reasons[0].code.value)
                )
                raise _ineligible([(r.code.value, r.message) for r in decision.reasons])
            async with self._db() as session, session.begin():
                row = await self._lifecycle.fenced_row(session, call_id)
                row.buyer_consent_at = now
                await store.add_changes(session, row, transition.state, transition.changes)
            live.call_sockets[socket.user_id] = socket
            self._lifecycle.after_stored(live, transition)
            seller = live.state.seller
        log.info("call=%s conn=%s accepted", call_id, socket.id)
        if not (seller.audio and seller.video):
            self._notify.to_socket(socket, PeerMediaState.of(live.state, seller.user_id))

    # --- eligibility while live ---------------------------------------------------------

    async def on_eligibility_change(self, change: EligibilityChange) -> None:
        """Re-check the live calls a change touches; end those no longer eligible."""
        for live in self._calls.calls():
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
                row = await self._lifecycle.fenced_row(session, live.call_id)
                thread = await session.get(Thread, row.thread_id)
                assert thread is not None
                decision = await decide_ongoing(
                    session, call=row, thread=thread, now=now, settings=self._settings
                )
            if decision.allowed:
                return
            log.info("call=%s no longer eligible: %s", live.call_id, decision.reasons[0].code)
            await self._lifecycle.apply_locked(
                live, EligibilityLost(decision.reasons[0].code.value)
            )
