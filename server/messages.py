"""Posting messages into a thread: every text passes the contact-details detector.

A message is judged alone when it is added, and again with its sender's recent messages
in the same thread when the session flushes it (a contact detail split across messages:
"my number starts with 646", then "555 0192"). The second judgement needs a query, and
``add_message`` is synchronous for its callers, so it runs in a ``before_flush`` hook:
SQLAlchemy runs flushes of an ``AsyncSession`` in its synchronous context, where the
session may query. Every caller flushes before it reads the stored message's flags.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from moderation.contact_details import contains_contact_details
from moderation.split_messages import (
    MAX_JOINED_MESSAGES,
    EarlierMessage,
    find_split_contact_details,
)
from server.clock import utcnow
from server.db.models import Message, Thread

CONTACT_DETAILS_FLAG = "contact_details"
# How far back a sender's earlier messages may hold the start of a split contact detail.
SPLIT_WINDOW: Final = timedelta(minutes=5)
# session.info key: messages added in this session that still need the split check.
_PENDING_SPLIT_CHECK: Final = "inboxcall.pending_split_check"


def message_flags(text: str) -> list[str]:
    return [CONTACT_DETAILS_FLAG] if contains_contact_details(text) else []


def add_message(
    session: AsyncSession,
    thread: Thread,
    *,
    sender_id: str | None,
    text: str,
    kind: str = "text",
    call_id: str | None = None,
) -> Message:
    now = utcnow()
    flags = message_flags(text) if kind != "system" else []
    message = Message(
        thread_id=thread.id,
        sender_id=sender_id,
        kind=kind,
        text=text,
        flags=flags,
        call_id=call_id,
        created_at=now,
    )
    session.add(message)
    if sender_id is not None and kind != "system" and not flags:
        session.sync_session.info.setdefault(_PENDING_SPLIT_CHECK, []).append(message)
    if sender_id is not None and sender_id == thread.buyer_id:
        thread.last_buyer_activity_at = now
    return message


def add_system_message(
    session: AsyncSession, thread: Thread, text: str, *, call_id: str | None = None
) -> Message:
    return add_message(session, thread, sender_id=None, text=text, kind="system", call_id=call_id)


@event.listens_for(Session, "before_flush")
def _join_split_contact_details(session: Session, _context: Any, _instances: Any) -> None:
    pending: list[Message] = session.info.pop(_PENDING_SPLIT_CHECK, [])
    if not pending:
        return
    with session.no_autoflush:
        for message in pending:
            _check_split(session, message)


def _check_split(session: Session, message: Message) -> None:
    earlier = session.scalars(
        select(Message)
        .where(
            Message.thread_id == message.thread_id,
            Message.sender_id == message.sender_id,
            Message.kind != "system",
            Message.created_at >= message.created_at - SPLIT_WINDOW,
            Message.created_at <= message.created_at,
            Message.id != message.id,
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(MAX_JOINED_MESSAGES)
    ).all()
    if not earlier:
        return
    context = [EarlierMessage(m.id, m.text) for m in reversed(earlier)]
    split = find_split_contact_details(context, message.text)
    if split is not None:
        message.flags = [*message.flags, CONTACT_DETAILS_FLAG]
        message.joins_message_ids = list(split.joins)
