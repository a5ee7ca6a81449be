"""The retention purge: deletes recording bytes the policy no longer keeps, leaves a
tombstone row and one audit row per deletion. Runs on a timer inside the service and as
``inboxcall purge``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recorder.retention import (
    RecordingRetentionFacts,
    RetentionSettings,
    ReviewVerdict,
    retention_decision,
)
from server.audit import audit
from server.clock import utcnow
from server.db.models import Call, Recording, Review
from server.policy import VIOLATION_VERDICTS, effective_policy
from server.recording_service import (
    DELETABLE_STATES,
    RecordingStore,
    delete_bytes,
    tombstone_recording,
)
from server.settings import Settings

log = logging.getLogger(__name__)
RETENTION_ACTOR = "system:retention"


def _retention_verdict(verdict: str | None, hold: str) -> ReviewVerdict | None:
    # A violation hold keeps a recording whatever the verdict field says; released holds
    # follow the released-violation clock.
    if hold in ("violation", "released") or verdict in VIOLATION_VERDICTS:
        return ReviewVerdict.VIOLATION
    if verdict is not None:
        return ReviewVerdict.CLEAN
    return None


class RetentionJob:
    def __init__(
        self,
        settings: Settings,
        db: async_sessionmaker[AsyncSession],
        store: RecordingStore,
    ) -> None:
        self._settings = settings
        self._db = db
        self._store = store
        self._task: asyncio.Task[None] | None = None

    async def run_once(self, now: datetime | None = None) -> list[str]:
        """Purge what policy no longer keeps; answers the deleted recording ids."""
        now = now or utcnow()
        async with self._db() as session:
            candidates = (
                await session.scalars(
                    select(Recording.id).where(Recording.state.in_(DELETABLE_STATES))
                )
            ).all()
        deleted = [rid for rid in candidates if await self._purge_if_expired(rid, now)]
        if deleted:
            log.info("retention purge deleted %d recording(s)", len(deleted))
        return deleted

    async def _purge_if_expired(self, recording_id: str, now: datetime) -> bool:
        """Decide on the facts as they are now (a verdict or a report may have landed since
        the scan), tombstone and audit in one transaction, then delete the bytes."""
        async with self._db() as session, session.begin():
            recording = await session.get(Recording, recording_id)
            call = await session.get(Call, recording.call_id) if recording else None
            if recording is None or call is None:
                return False
            review = await session.get(Review, call.id)
            policy_settings = await effective_policy(session, self._settings)
            facts = RecordingRetentionFacts(
                created_at=recording.created_at,
                sampled=call.review_required,
                verdict=_retention_verdict(review.verdict if review else None, recording.hold),
                verdict_at=review.verdict_at if review else None,
                released_at=recording.hold_released_at,
            )
            policy = RetentionSettings(
                unsampled_days=policy_settings.retention_days,
                reviewed_clean_days=policy_settings.reviewed_clean_retention_days,
                released_violation_days=policy_settings.reviewed_clean_retention_days,
            )
            decision = retention_decision(facts, now, policy)
            if decision.keep:
                return False
            reason = decision.reason.value
            key = await tombstone_recording(
                session, recording_id, reason=f"retention: {reason}", now=now
            )
            if key is None:  # another purge or an admin got there first
                return False
            audit(
                session,
                actor_id=RETENTION_ACTOR,
                action="recording.delete",
                target_type="recording",
                target_id=recording_id,
                reason=reason,
                call_id=call.id,
            )
        await delete_bytes(self._store, key)
        return True

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run_forever(), name="retention-purge")

    async def _run_forever(self) -> None:
        interval = self._settings.purge_interval_seconds
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retention purge failed; retrying in %.0f s", interval)
            await asyncio.sleep(interval)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
