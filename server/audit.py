"""Append-only audit log writes (the table refuses UPDATE and DELETE itself)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.clock import utcnow
from server.db.models import AuditEntry


def audit(
    session: AsyncSession,
    *,
    actor_id: str | None,
    action: str,
    target_type: str,
    target_id: str,
    **details: Any,
) -> AuditEntry:
    entry = AuditEntry(
        at=utcnow(),
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details,
    )
    session.add(entry)
    return entry
