"""Applying inputs to live calls: the one shell around the pure state machine.

``apply`` feeds an input to ``signaling.call_state.advance`` under the call's lock,
stores the changes (call row, ``call_events``, system messages) in one transaction on the
call's row, checked for ownership under the call's fencing epoch, and only then takes the
new state and tells people: both participants on every socket after a phase change, the
other participant when someone is lost or back. It arms one timer per call at
``state.next_deadline()``, starts the recording when the call becomes active, and once the
call ends removes it (its claims freed) and tears it down (media, then the
``on_call_ended`` hooks) in a task it owns and awaits at shutdown.

Nothing done under a call's lock blocks on a client (sending only queues); database work
happens per signalling message, never per media frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.calls import store
from server.calls.errors import CallError, no_such_call
from server.calls.live_call import LiveCall
from server.calls.notifications import CallNotifier, CallStateChanged, PeerConnectionState
from server.calls.registry import LiveCallRegistry
from server.calls.seams import CallEndedHook
from server.clock import utcnow
from server.db.models import Call
from server.owned_tasks import OwnedTasks
from signaling.call_state import (
    CallInput,
    CallPhase,
    CallState,
    CallStateError,
    CallTransition,
    DeadlinesDue,
    FailureDetail,
    MediaUnavailable,
    PhaseChanged,
    ServerShutdown,
    advance,
)
from signaling.ws_protocol import ErrorCode

log = logging.getLogger(__name__)
DEADLINE_RETRY_SECONDS = 1.0

TransitionListener = Callable[[LiveCall, CallTransition], None]


class CallLifecycle:
    def __init__(
        self,
        *,
        db: async_sessionmaker[AsyncSession],
        calls: LiveCallRegistry,
        notify: CallNotifier,
        node_id: str,
        call_ended_hooks: list[CallEndedHook],
    ) -> None:
        self._db = db
        self._calls = calls
        self._notify = notify
        self._node_id = node_id
        self.on_call_ended = call_ended_hooks
        self.transition_listeners: list[TransitionListener] = []
        """Told (synchronously) after each stored transition: metrics, tests."""
        # Never closed (cancelled): a teardown stores what was recorded, so it runs to its
        # end; ``settled`` (and so shutdown) awaits them.
        self._teardowns = OwnedTasks("call teardowns")
        self.accepting = True
        """False once shutdown began: no new call may start."""

    # --- inputs -----------------------------------------------------------------------

    async def apply(self, live: LiveCall, event: CallInput) -> CallTransition:
        async with live.lock:
            return await self.apply_locked(live, event)

    async def apply_locked(self, live: LiveCall, event: CallInput) -> CallTransition:
        """``apply`` for a caller that holds ``live.lock``."""
        transition = advance(live.state, event, utcnow())
        if transition.changes:
            async with self._db() as session, session.begin():
                row = await self.fenced_row(session, live.call_id)
                await store.add_changes(session, row, transition.state, transition.changes)
        self.after_stored(live, transition)
        return transition

    async def fenced_row(self, session: AsyncSession, call_id: str) -> Call:
        """The call's row, locked for the transaction, after checking that this node still
        owns the call under the epoch it started with (fencing: a node declared dead while
        it was paused must not act on a call another node ended)."""
        row = await session.get(Call, call_id, with_for_update=True)
        if row is None:  # the row is written before the call goes live
            raise LookupError(f"call {call_id} has no row")
        live = self._calls.get(call_id)
        if live is not None and (row.owner_node, row.owner_epoch) != (self._node_id, live.epoch):
            self._lost_ownership(live)
            raise CallError(ErrorCode.CALL_NOT_LIVE, "the call has ended")
        return row

    def _lost_ownership(self, live: LiveCall) -> None:
        """Another node ended this call (it thought this node dead): drop it here without
        telling anyone; its media closes and what was recorded is stored."""
        if not live.closing:
            log.warning("call=%s was ended by another node; dropping it here", live.call_id)
            self.finish(live)

    def after_stored(self, live: LiveCall, transition: CallTransition) -> None:
        """``transition`` is stored: take the new state and act on it. Synchronous, so
        nothing can interleave."""
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
                self._notify.to_users(
                    (p.user_id for p in live.state.participants), CallStateChanged.of(live.state)
                )
                if change.phase is CallPhase.ACTIVE and change.previous is CallPhase.CONNECTING:
                    live.spawn(self._start_recording(live), name=f"call-record-{live.call_id}")
        if live.state.is_live:
            live.arm_timer(lambda: self._deadline_due(live))
        elif not live.closing:
            self.finish(live)

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
            if peer.in_call:
                self._notify.to_user(
                    peer.user_id, PeerConnectionState(live.call_id, new.user_id, new.lost)
                )

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

    async def _start_recording(self, live: LiveCall) -> None:
        """The call became active: record it from now on. Every call is recorded, so a call
        whose recording cannot start does not go on."""
        try:
            await live.media.start_recording()
        except Exception:
            log.exception("call=%s the recording could not be started", live.call_id)
            await self.media_failed(live, FailureDetail.RECORDING_FAILED)

    async def media_failed(self, live: LiveCall, detail: FailureDetail) -> None:
        with contextlib.suppress(CallStateError):
            await self.apply(live, MediaUnavailable(detail))

    # --- lookups ----------------------------------------------------------------------

    async def live_for(self, user_id: str, call_id: str) -> LiveCall:
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

    # --- the end ----------------------------------------------------------------------

    def finish(self, live: LiveCall) -> None:
        """The call is over here: forget it at once (its claims freed), tear it down in a
        task this owns."""
        live.closing = True
        self._calls.remove(live)
        self._teardowns.spawn(self._teardown(live), name=f"call-teardown-{live.call_id}")

    async def _teardown(self, live: LiveCall) -> None:
        await live.aclose()
        for hook in list(self.on_call_ended):
            try:
                await hook(live.call_id, live.recordings)
            except Exception:
                log.exception("call=%s on_call_ended hook failed", live.call_id)
        log.info("call=%s torn down", live.call_id)

    async def settled(self) -> None:
        """Until every ended call's teardown (media, hooks) has finished."""
        await self._teardowns.wait()

    async def shutdown(self) -> None:
        """End every live call with ``server_shutdown`` and wait for their teardown."""
        self.accepting = False
        while self._calls:
            for live in self._calls.calls():
                try:
                    await self.apply(live, ServerShutdown())
                except CallStateError:
                    pass
                except Exception:
                    log.exception("call=%s could not be ended at shutdown", live.call_id)
                    self.finish(live)
        await self.settled()
