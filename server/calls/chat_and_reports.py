"""In-call chat (stored as thread messages, checked for contact details, relayed to both
participants) and reports (either participant, during the call or after it; a report
makes review mandatory)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.calls import store
from server.calls.call_sockets import CallSockets
from server.calls.errors import CallError, no_such_call
from server.calls.lifecycle import CallLifecycle
from server.calls.notifications import CallNotifier, ChatMessagePosted
from server.calls.registry import LiveCallRegistry
from server.calls.seams import CallSocket
from server.clock import utcnow
from server.db.models import Call, CallReport, Thread
from server.db.models import CallEvent as CallEventRow
from server.messages import CONTACT_DETAILS_FLAG, add_message
from server.review.service import decide_review
from server.settings import Settings
from signaling.call_state import CallEventKind, ChatPosted, Reported, advance
from signaling.ws_protocol import ErrorCode

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReportResult:
    report_id: int
    call_id: str
    reason: str
    details: str | None
    created_at: datetime


class ChatAndReports:
    def __init__(
        self,
        *,
        settings: Settings,
        db: async_sessionmaker[AsyncSession],
        calls: LiveCallRegistry,
        lifecycle: CallLifecycle,
        sockets: CallSockets,
        notify: CallNotifier,
    ) -> None:
        self._settings = settings
        self._db = db
        self._calls = calls
        self._lifecycle = lifecycle
        self._sockets = sockets
        self._notify = notify

    async def chat(self, socket: CallSocket, call_id: str, text: str) -> ChatMessagePosted:
        """Store and relay a chat message; answers it as stored (the sender's reply)."""
        if len(text) > self._settings.message_max_chars:
            raise CallError(
                ErrorCode.INVALID_MESSAGE,
                f"chat messages are at most {self._settings.message_max_chars} characters",
            )
        live = await self._lifecycle.live_for(socket.user_id, call_id)
        user_id = socket.user_id
        async with live.lock:
            now = utcnow()
            advance(live.state, ChatPosted(user_id, "-"), now)  # refuse early, before storing
            async with self._db() as session, session.begin():
                row = await self._lifecycle.fenced_row(session, call_id)
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
                posted = ChatMessagePosted(
                    call_id, message.id, user_id, text, flags, message.created_at
                )
            self._lifecycle.after_stored(live, transition)
        # The sender's own socket gets the stored copy as its reply instead.
        self._notify.to_users(
            (p.user_id for p in live.state.participants), posted, exclude_connection=socket.id
        )
        if CONTACT_DETAILS_FLAG in flags:
            log.info("call=%s conn=%s chat flagged: contact details", call_id, socket.id)
        await self._sockets.attach(live, socket)
        return posted

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
                    row = await self._lifecycle.fenced_row(session, call_id)
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
                self._lifecycle.after_stored(live, transition)
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
