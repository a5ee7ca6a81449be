"""What a person's inbox shows: threads by latest activity with unread counts, and the
call a system message is about (so pages draw a "Join call" button or a missed-call card
instead of raw text). One reader for the inbox page, the thread page and the inbox API.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.schemas import InboxThread, MessageCall, MessageOut
from server.calls.errors import JoinLinkError
from server.calls.join_links import check_join_token
from server.db.models import Block, Call, Message, Thread, ThreadRead, User
from server.eligibility_snapshots import LIVE_CALL_STATES, user_snapshot
from server.serialize import message_out, thread_summary
from server.settings import Settings

INBOX_LIMIT = 500
MESSAGES_PER_PAGE = 200
# The join link the call service writes into the thread for an offline buyer.
JOIN_LINK = re.compile(r"(?:https?://[^\s<>\"'/]+)?/calls/[A-Za-z0-9_-]+/join\?token=([^\s<>\"']+)")
# A buyer did not take these calls: their notes are news to the buyer (unread).
UNANSWERED = ("missed", "cancelled")


async def message_calls(
    session: AsyncSession, viewer: User, messages: Sequence[Message], settings: Settings
) -> dict[str, MessageCall]:
    """The call of each system message that has one, keyed by message id."""
    call_ids = {m.call_id for m in messages if m.kind == "system" and m.call_id}
    if not call_ids:
        return {}
    calls = {c.id: c for c in (await session.scalars(select(Call).where(Call.id.in_(call_ids))))}
    out: dict[str, MessageCall] = {}
    for m in messages:
        call = calls.get(m.call_id or "")
        if m.kind != "system" or call is None:
            continue
        link = JOIN_LINK.search(m.text)
        out[m.id] = MessageCall(
            id=call.id,
            kind="invite" if link else "outcome",
            state=call.state,
            end_reason=call.end_reason,
            ended_by=call.ended_by,
            duration_seconds=call.duration_seconds,
            join_url=_joinable_url(link, call, viewer, settings) if link else None,
        )
    return out


def _joinable_url(link: re.Match[str], call: Call, viewer: User, settings: Settings) -> str | None:
    """The join link, for the buyer only, while the call is live and the link still works."""
    if viewer.id != call.buyer_id or call.state not in LIVE_CALL_STATES:
        return None
    try:
        fresh = check_join_token(
            settings.secret_key.get_secret_value(),
            link.group(1),
            call_id=call.id,
            user_id=viewer.id,
            ttl_seconds=settings.join_link_ttl_seconds,
        )
    except JoinLinkError:
        return None
    return link.group(0) if fresh else None


async def latest_messages(session: AsyncSession, thread_id: str) -> list[Message]:
    """The thread's latest messages, oldest first (what the thread page and API show)."""
    rows = (
        await session.scalars(
            select(Message)
            .where(Message.thread_id == thread_id)
            .order_by(Message.created_at.desc(), Message.id)
            .limit(MESSAGES_PER_PAGE)
        )
    ).all()
    return list(reversed(rows))


async def messages_out(
    session: AsyncSession, viewer: User, messages: Sequence[Message], settings: Settings
) -> list[MessageOut]:
    calls = await message_calls(session, viewer, messages, settings)
    return [message_out(m, call=calls.get(m.id)) for m in messages]


def _unread_condition(viewer: User) -> ColumnElement[bool]:
    """Messages that are news to ``viewer``: the other person's, and (buyers) the notes of
    calls they did not take. A seller saw each call's outcome on the call screen."""
    theirs = and_(Message.kind != "system", Message.sender_id != viewer.id)
    if viewer.role != "buyer":
        return theirs
    untaken = and_(
        Message.kind == "system",
        Call.buyer_consent_at.is_(None),
        or_(Call.end_reason.is_(None), Call.end_reason.in_(UNANSWERED)),
    )
    return or_(theirs, untaken)


@dataclass(frozen=True, slots=True)
class InboxRow:
    thread: Thread
    seller: User
    buyer: User
    blocked: bool
    last_message: Message | None
    unread_count: int

    @property
    def last_activity_at(self) -> datetime | None:
        if self.last_message is not None:
            return self.last_message.created_at
        return self.thread.last_buyer_activity_at or self.thread.created_at


async def inbox_rows(session: AsyncSession, viewer: User) -> list[InboxRow]:
    """The viewer's threads, latest activity first, with their last message and unread count."""
    latest = (
        select(Message.thread_id, func.max(Message.created_at).label("at"))
        .group_by(Message.thread_id)
        .subquery()
    )
    activity = func.coalesce(latest.c.at, Thread.last_buyer_activity_at, Thread.created_at)
    threads = (
        await session.scalars(
            select(Thread)
            .outerjoin(latest, latest.c.thread_id == Thread.id)
            .where(or_(Thread.seller_id == viewer.id, Thread.buyer_id == viewer.id))
            .order_by(activity.desc(), Thread.id)
            .limit(INBOX_LIMIT)
        )
    ).all()
    ids = [t.id for t in threads]
    if not ids:
        return []
    user_ids = {t.seller_id for t in threads} | {t.buyer_id for t in threads}
    users = {u.id: u for u in await session.scalars(select(User).where(User.id.in_(user_ids)))}
    blocks = {
        (b.buyer_id, b.seller_id)
        for b in await session.scalars(select(Block).where(Block.seller_id.in_(user_ids)))
    }
    last: dict[str, Message] = {}
    for message in await session.scalars(
        select(Message)
        .join(
            latest,
            and_(Message.thread_id == latest.c.thread_id, Message.created_at == latest.c.at),
        )
        .where(Message.thread_id.in_(ids))
        .order_by(Message.id)
    ):
        last.setdefault(message.thread_id, message)
    unread = dict(
        (
            await session.execute(
                select(Message.thread_id, func.count())
                .outerjoin(
                    ThreadRead,
                    and_(
                        ThreadRead.thread_id == Message.thread_id, ThreadRead.user_id == viewer.id
                    ),
                )
                .outerjoin(Call, Call.id == Message.call_id)
                .where(
                    Message.thread_id.in_(ids),
                    or_(ThreadRead.read_at.is_(None), Message.created_at > ThreadRead.read_at),
                    _unread_condition(viewer),
                )
                .group_by(Message.thread_id)
            )
        ).all()
    )
    return [
        InboxRow(
            thread=t,
            seller=users[t.seller_id],
            buyer=users[t.buyer_id],
            blocked=(t.buyer_id, t.seller_id) in blocks,
            last_message=last.get(t.id),
            unread_count=int(unread.get(t.id, 0)),
        )
        for t in threads
    ]


async def inbox_threads(
    session: AsyncSession, viewer: User, settings: Settings
) -> list[InboxThread]:
    rows = await inbox_rows(session, viewer)
    lasts = [r.last_message for r in rows if r.last_message is not None]
    calls = await message_calls(session, viewer, lasts, settings)
    return [
        InboxThread(
            **thread_summary(r.thread, r.seller, r.buyer, r.blocked).model_dump(),
            last_message=(
                message_out(r.last_message, call=calls.get(r.last_message.id))
                if r.last_message
                else None
            ),
            last_activity_at=r.last_activity_at,
            unread_count=r.unread_count,
        )
        for r in rows
    ]


async def mark_read(session: AsyncSession, thread_id: str, user_id: str, at: datetime) -> None:
    """Everything in the thread up to ``at`` is read (a marker only moves forward)."""
    row = await session.get(ThreadRead, (thread_id, user_id), with_for_update=True)
    if row is None:
        session.add(ThreadRead(thread_id=thread_id, user_id=user_id, read_at=at))
    elif row.read_at < at:
        row.read_at = at


async def is_restricted(session: AsyncSession, user: User) -> bool:
    """The host's flag or an open violation verdict, as eligibility reads it."""
    return (await user_snapshot(session, user)).restricted
