"""The webhook outbox: events added to the session of the change they describe.

An event commits or rolls back with its change, so the host never hears of a change that
did not happen and never misses one that did. Its body (id included) is fixed here, once:
every retry sends the same bytes.

Events are written only by sessions of a factory ``enable_webhooks`` was called on (the
serving process does it when ``INBOXCALL_WEBHOOK_URL`` is set): with no receiver there is
nothing to write, and no backlog of stale events floods one configured later.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import utcnow
from server.db.models import WebhookEvent

# Key in ``Session.info`` (SQLAlchemy's place for an application's per-session data).
WEBHOOKS_ENABLED = "inboxcall.webhooks_enabled"

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
EVENT_STATES = (PENDING, DELIVERED, FAILED)


def enable_webhooks(factory: async_sessionmaker[AsyncSession]) -> None:
    """Sessions made by ``factory`` from now on write the events they are given."""
    factory.configure(info={WEBHOOKS_ENABLED: True})


def webhooks_enabled(session: AsyncSession) -> bool:
    return bool(session.info.get(WEBHOOKS_ENABLED))


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


def timestamp(at: datetime | None) -> str | None:
    """ISO-8601 in UTC, as every time in an event's ``data``."""
    return None if at is None else at.isoformat(timespec="milliseconds")


def emit(
    session: AsyncSession, event_type: str, data: Mapping[str, Any], *, now: datetime | None = None
) -> WebhookEvent | None:
    """Add one event to the session's transaction (None when webhooks are off)."""
    if not webhooks_enabled(session):
        return None
    now = now or utcnow()
    event_id = new_event_id()
    body = json.dumps(
        {"id": event_id, "type": event_type, "created_at": timestamp(now), "data": dict(data)},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    row = WebhookEvent(
        id=event_id,
        type=event_type,
        created_at=now,
        body=body,
        state=PENDING,
        attempts=0,
        next_attempt_at=now,
        window_started_at=now,
    )
    session.add(row)
    return row


def redrive(rows: Iterable[WebhookEvent], now: datetime) -> list[str]:
    """An operator's re-drive: due now, with a fresh retry window; the id stays the same."""
    ids: list[str] = []
    for row in rows:
        row.state = PENDING
        row.next_attempt_at = now
        row.window_started_at = now
        row.lease_token = None
        row.lease_until = None
        ids.append(row.id)
    return ids
