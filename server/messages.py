"""Posting messages into a thread: every text passes the contact-details detector."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from server.clock import utcnow
from server.db.models import Message, Thread
from moderation.contact_details import contains_contact_details

CONTACT_DETAILS_FLAG = "contact_details"


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
    if sender_id is not None and sender_id == thread.buyer_id:
        thread.last_buyer_activity_at = now
    return message


def add_system_message(
    session: AsyncSession, thread: Thread, text: str, *, call_id: str | None = None
) -> Message:
    return add_message(session, thread, sender_id=None, text=text, kind="system", call_id=call_id)
