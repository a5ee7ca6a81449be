"""Writing a call's changes to the database: the call row, its events, system messages.

Called with an open transaction; nothing here commits. The call service stores a change
before it tells anyone about it, so what clients see is always what reviewers will read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import Call, Thread
from server.db.models import CallEvent as CallEventRow
from server.messages import add_system_message
from server.webhooks import events as webhook_events
from signaling.call_duration import LINK_EVENT_KINDS, LinkMark, call_duration
from signaling.call_state import (
    CallEvent,
    CallPhase,
    CallState,
    Change,
    EndReason,
    PhaseChanged,
)

MISSED_TEXT = "Missed video call"
DECLINED_TEXT = "Call declined"
CANCELLED_TEXT = "Call cancelled"


def format_duration(duration: timedelta) -> str:
    """``0:42``, ``12:05``, ``1:02:03``."""
    seconds = max(0, int(duration.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{minutes}:{seconds:02d}"


def end_message_text(state: CallState, duration: timedelta | None) -> str:
    """The system message an ended call leaves in its thread; ``duration`` is the call's
    ``call_duration`` (``None`` if it never became active)."""
    assert state.end is not None
    if state.answered_at is not None:
        # Accepted: a call took place (however short), so say how long it was connected.
        return f"Video call ended ({format_duration(duration or timedelta(0))})"
    match state.end.reason:
        case EndReason.DECLINED:
            return DECLINED_TEXT
        case EndReason.CANCELLED:
            return CANCELLED_TEXT
        case _:
            # Rang out, or ended for another reason before the buyer answered.
            return MISSED_TEXT


def event_row(event: CallEvent, extra: Mapping[str, Any] | None = None) -> CallEventRow:
    data: dict[str, Any] = {}
    if event.detail is not None:
        data["detail"] = event.detail
    if event.flags:
        data["flags"] = list(event.flags)
    if extra:
        data.update(extra)
    return CallEventRow(
        call_id=event.call_id,
        kind=event.kind.value,
        user_id=event.user_id,
        at=event.at,
        data=data,
    )


async def add_changes(
    session: AsyncSession,
    row: Call,
    state: CallState,
    changes: tuple[Change, ...],
    *,
    event_data: Mapping[str, Any] | None = None,
) -> None:
    """Store ``changes`` (from one transition whose result is ``state``) on ``row``."""
    for change in changes:
        if isinstance(change, CallEvent):
            session.add(event_row(change, event_data))
            continue
        if not isinstance(change, PhaseChanged):
            continue  # CallEndingSoon: only told, never stored
        row.state = change.phase.value
        if change.phase is CallPhase.ACTIVE and row.connected_at is None:
            row.connected_at = change.at
            webhook_events.call_started(session, row)  # once: a reconnect is no new start
        if change.phase is CallPhase.ENDED and change.end is not None:
            row.end_reason = change.end.reason.value
            row.ended_by = change.end.by
            row.end_detail = change.end.detail
            row.ended_at = change.end.at
            duration = await stored_duration(session, row.id, state.active_at, change.end.at)
            row.duration_seconds = None if duration is None else duration.total_seconds()
            thread = await session.get(Thread, row.thread_id)
            if thread is not None:
                text = end_message_text(state, duration)
                add_system_message(session, thread, text, call_id=row.id)
            webhook_events.call_ended(session, row)


async def stored_duration(
    session: AsyncSession, call_id: str, active_at: datetime | None, ended_at: datetime
) -> timedelta | None:
    """``call_duration`` from the call's stored reconnecting/reconnected events (the
    session flushes this transition's own events first)."""
    if active_at is None:
        return None
    rows = await session.execute(
        select(CallEventRow.kind, CallEventRow.user_id, CallEventRow.at).where(
            CallEventRow.call_id == call_id, CallEventRow.kind.in_(LINK_EVENT_KINDS)
        )
    )
    marks = [m for k, u, a in rows if (m := LinkMark.from_event(k, u, a)) is not None]
    return call_duration(active_at, ended_at, marks)
