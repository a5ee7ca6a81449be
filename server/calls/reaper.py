"""Ending the live calls of a node that died, from another node.

The dead node's calls cannot go on (their media ran on its workers), so a survivor ends
each one ``failed`` / ``node_lost``: a conditional update on the call's fencing epoch, so
that several survivors noticing at once end it exactly once, and the dead node, if it was
only paused, finds the epoch moved and drops the call without acting on it. Both people
are told on every socket, wherever they are.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.calls.notifications import CallNotifier, CallStateChanged
from server.calls.seams import Outbox
from server.calls.store import MISSED_TEXT, format_duration
from server.db.models import Call, Thread
from server.db.models import CallEvent as CallEventRow
from server.eligibility_snapshots import LIVE_CALL_STATES
from server.messages import add_system_message
from server.webhooks import events as webhook_events
from signaling.call_state import CallEnd, CallEventKind, CallPhase, EndReason, FailureDetail

log = logging.getLogger(__name__)


async def end_calls_of_dead_node(
    db: async_sessionmaker[AsyncSession], outbox: Outbox, node_id: str, now: datetime
) -> list[str]:
    """End every live call ``node_id`` owns; answers the ids of the calls this node ended."""
    notify = CallNotifier(outbox)
    async with db() as session:
        candidates = (
            await session.execute(
                select(Call.id, Call.owner_epoch).where(
                    Call.owner_node == node_id, Call.state.in_(LIVE_CALL_STATES)
                )
            )
        ).all()
    ended: list[tuple[str, str, str]] = []
    for call_id, epoch in candidates:
        async with db() as session, session.begin():
            result = await session.execute(
                update(Call)
                .where(
                    Call.id == call_id,
                    Call.owner_epoch == epoch,
                    Call.state.in_(LIVE_CALL_STATES),
                )
                .values(
                    state=CallPhase.ENDED.value,
                    end_reason=EndReason.FAILED.value,
                    end_detail=FailureDetail.NODE_LOST.value,
                    ended_at=now,
                    interrupted=True,
                    owner_epoch=epoch + 1,
                )
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another survivor, or the owner itself, got there first
            row = await session.get(Call, call_id)
            assert row is not None
            for user_id in (row.seller_id, row.buyer_id):
                session.add(
                    CallEventRow(
                        call_id=call_id,
                        kind=CallEventKind.LEFT.value,
                        user_id=user_id,
                        at=now,
                        data={"detail": EndReason.FAILED.value},
                    )
                )
            thread = await session.get(Thread, row.thread_id)
            if thread is not None:
                add_system_message(session, thread, _end_text(row, now), call_id=call_id)
            webhook_events.call_ended(session, row)
            ended.append((call_id, row.seller_id, row.buyer_id))
    for call_id, seller_id, buyer_id in ended:
        log.warning("call=%s ended: its node %s is gone", call_id, node_id)
        end = CallEnd(EndReason.FAILED, now, detail=FailureDetail.NODE_LOST.value)
        notify.to_users((seller_id, buyer_id), CallStateChanged(call_id, CallPhase.ENDED, end))
    return [call_id for call_id, _, _ in ended]


def _end_text(row: Call, now: datetime) -> str:
    if row.buyer_consent_at is None:
        return MISSED_TEXT
    start = row.connected_at or now
    return f"Video call ended ({format_duration(now - start)})"
