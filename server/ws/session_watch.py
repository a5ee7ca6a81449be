"""Sockets outlive no session: the sweep that closes them (4001) once theirs ended.

Sign-out on this node closes the session's sockets at once (``PresenceRegistry.
close_session`` through the app's session-ended hooks), and each socket closes itself at
its session's expiry. What neither sees — a session ended by another node, or its row
changed by an operator — this sweep finds: every ``SESSION_CHECK_INTERVAL_SECONDS`` one
query asks which of the open sockets' sessions are still live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import utcnow
from server.db.models import UserSession
from server.ws.presence import PresenceRegistry
from signaling import ws_limits

log = logging.getLogger(__name__)

_IDS_PER_QUERY = 500
"""Bounds the ``IN (...)`` list of one query (SQLite's parameter limit is far above)."""


class SessionWatch:
    def __init__(self, presence: PresenceRegistry, db: async_sessionmaker[AsyncSession]) -> None:
        self._presence = presence
        self._db = db
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="ws-session-watch"
            )

    async def aclose(self) -> None:
        """Stop the sweep; safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(ws_limits.SESSION_CHECK_INTERVAL_SECONDS)
            try:
                await self.check_once()
            except Exception:
                # The database may be briefly away; the next sweep tries again.
                log.exception("session sweep failed")

    async def check_once(self) -> int:
        """Close the sockets whose session is no longer live; answer how many."""
        ids = sorted({c.session_id for c in self._presence.connections() if c.session_id})
        live: set[str] = set()
        now = utcnow()
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            async with self._db() as session:
                live.update(
                    await session.scalars(
                        select(UserSession.id).where(
                            UserSession.id.in_(chunk),
                            UserSession.ended_at.is_(None),
                            UserSession.expires_at > now,
                        )
                    )
                )
        closed = sum(self._presence.close_session(sid) for sid in ids if sid not in live)
        if closed:
            log.info("closed %d socket(s) whose session ended", closed)
        return closed
