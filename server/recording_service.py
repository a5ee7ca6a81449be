"""Storing every call's recordings: the call's media host (``server.media``) records it
and finalises the files at call end; this service stores them (checksum verified), writes
a row per participant and draws the review sample. At start-up, recordings of calls that
were live when the process died are finalised from disk and marked interrupted.

Everything heavy (remuxing, hashing, uploads) runs in the recorder's threads or
``asyncio.to_thread``; the loop only awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recorder import FinalisedRecording, recover_recording
from recorder.finalise import MANIFEST_SUFFIX
from recorder.sampling import ReviewSampler, RiskSignals
from recorder.storage import LocalDirectoryStorage, RecordingStorage, S3Storage
from server.clock import utcnow
from server.db.models import Call, Recording
from server.policy import effective_policy
from server.settings import Settings
from server.webhooks import events as webhook_events

log = logging.getLogger(__name__)


RecordingStore = RecordingStorage


async def check_store(store: RecordingStore) -> None:
    """Readiness: the storage answers (a missing probe object is a fine answer)."""
    await store.exists("readiness-probe")


DELETABLE_STATES = ("finalised", "interrupted")


async def tombstone_recording(
    session: AsyncSession, recording_id: str, *, reason: str, now: datetime
) -> str | None:
    """Mark the row deleted, if it still holds bytes; answers the storage key to delete
    once the transaction commits, or None when someone else deleted it first.

    The row is marked before the bytes go: a failure in between leaves stray bytes and
    an honest tombstone, never missing bytes without one.
    """
    result = await session.execute(
        update(Recording)
        .where(Recording.id == recording_id, Recording.state.in_(DELETABLE_STATES))
        .values(state="deleted", deleted_at=now, deleted_reason=reason)
        .returning(Recording.storage_key)
    )
    return result.scalar_one_or_none()


async def delete_bytes(store: RecordingStore, key: str) -> None:
    try:
        await store.delete(key)
    except Exception:
        log.exception("deleting the bytes of a tombstoned recording failed (key kept in the row)")


def sampling_key(settings: Settings) -> bytes:
    """The draw's key: derived from the secret key and named by the key id, so a draw is
    reproducible for audit by whoever holds the secret, and unpredictable to users."""
    secret = settings.secret_key.get_secret_value().encode()
    return hmac.new(
        secret, b"review-sampling:" + settings.review_sample_key_id.encode(), hashlib.sha256
    ).digest()


async def apply_review_decision(session: AsyncSession, call: Call, settings: Settings) -> None:
    """Draw the call's review sample (once) and mark it for review when drawn or mandatory."""
    signals = RiskSignals(
        contact_details_in_chat=call.contact_details_detected,
        reported_by_participant=call.reported,
    )
    if call.sampled is None:
        policy = await effective_policy(session, settings)
        sampler = ReviewSampler(
            rate=policy.review_sample_rate,
            key_id=settings.review_sample_key_id,
            secret=sampling_key(settings),
        )
        decision = sampler.decide(call.id, signals)
        call.sample_rate = decision.rate
        call.sample_key_id = decision.key_id
        call.sample_draw = decision.draw
        call.sampled = decision.drawn
    # Merged, never dropped: a report may have been written by a concurrent transaction.
    reasons = sorted({*signals.reasons(), *(call.mandatory_reasons or [])})
    call.mandatory_reasons = reasons
    # A drawn call with nothing recorded (declined, missed) has nothing to review.
    recorded = await session.scalar(
        select(func.count()).select_from(Recording).where(Recording.call_id == call.id)
    )
    call.review_required = (
        call.review_required or (bool(call.sampled) and bool(recorded)) or bool(reasons)
    )


class RecordingService:
    def __init__(
        self, settings: Settings, db: async_sessionmaker[AsyncSession], store: RecordingStore
    ) -> None:
        self._settings = settings
        self._db = db
        self._store = store
        self._staging = settings.recording_staging_dir

    async def call_ended(self, call_id: str, recordings: Sequence[FinalisedRecording]) -> None:
        """Store the call's finished recordings (made by its media host), then decide on
        review."""
        await self._store_results(call_id, list(recordings))

    async def _store_results(self, call_id: str, results: list[FinalisedRecording]) -> None:
        """Store what can be stored, write its rows, and always write the review decision.

        A file whose upload fails stays in staging (finalised), so the next start-up
        stores it; only stored files leave staging.
        """
        stored: list[tuple[FinalisedRecording, str]] = []
        for result in results:
            key = f"{call_id}/{result.path.name}"
            try:
                await self._store.put(key, result.path)
            except Exception:
                log.exception(
                    "call %s: storing a recording failed; kept for the next start-up", call_id
                )
                continue
            stored.append((result, key))
        async with self._db() as session, session.begin():
            call = await session.get(Call, call_id, with_for_update=True)
            if call is None:
                log.error("call %s: recordings finalised for an unknown call", call_id)
                return
            announce: list[Recording] = []
            for result, key in stored:
                row = (
                    await session.scalars(
                        select(Recording).where(
                            Recording.call_id == call_id,
                            Recording.participant_id == result.participant_id,
                        )
                    )
                ).first()
                if row is None:
                    row = Recording(call_id=call_id, participant_id=result.participant_id)
                    session.add(row)
                if row.sha256 != result.sha256:
                    # New bytes: a file stored again after a crash (same checksum) is
                    # not announced twice.
                    announce.append(row)
                row.storage_key = key
                row.state = "interrupted" if result.interrupted else "finalised"
                row.mime_type = result.mime_type
                row.video_codec = result.video_codec
                row.audio_codec = result.audio_codec
                row.start_offset = result.start_offset
                row.duration = result.duration
                row.size = result.size
                row.sha256 = result.sha256
                row.video_frames = result.video_frames
                row.audio_frames = result.audio_frames
                row.finalised_at = utcnow()
            starts = [r.call_started_at_unix for r in results if r.call_started_at_unix]
            if starts and call.recording_started_at is None:
                call.recording_started_at = datetime.fromtimestamp(min(starts), UTC)
            if any(result.interrupted for result, _ in stored):
                call.interrupted = True
            await session.flush()  # recording ids exist from here
            for row in announce:
                webhook_events.recording_stored(session, row)
            await apply_review_decision(session, call, self._settings)
        await asyncio.to_thread(_remove_stored, self._staging / call_id, [r for r, _ in stored])
        log.info("call %s: %d of %d recording(s) stored", call_id, len(stored), len(results))

    async def recover_interrupted(self) -> list[str]:
        """Store what a previous process left in staging: recordings it was still writing
        (finalised now from disk and marked interrupted) and finalised ones it had not
        stored yet."""
        if not self._staging.exists():
            return []
        manifests = await asyncio.to_thread(
            lambda: sorted(self._staging.rglob(f"*{MANIFEST_SUFFIX}"))
        )
        by_call: dict[str, list[FinalisedRecording]] = {}
        for manifest in manifests:
            try:
                result = await asyncio.to_thread(recover_recording, manifest)
            except Exception:
                log.exception("could not recover recording %s", manifest.name)
                continue
            by_call.setdefault(result.call_id, []).append(result)
        for call_id, results in by_call.items():
            await self._store_results(call_id, results)
        return sorted(by_call)


def _remove_stored(directory: Path, stored: list[FinalisedRecording]) -> None:
    for result in stored:
        stem = result.path.name.rsplit(".", 1)[0]
        result.path.unlink(missing_ok=True)
        (result.path.parent / f"{stem}{MANIFEST_SUFFIX}").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        directory.rmdir()  # only when nothing is left behind


def make_store(settings: Settings) -> RecordingStore:
    if settings.storage_backend == "s3":
        if not settings.s3_bucket:
            raise ValueError("INBOXCALL_S3_BUCKET is required with INBOXCALL_STORAGE_BACKEND=s3")
        return S3Storage(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
        )
    root = settings.resolved_recordings_dir
    root.mkdir(parents=True, exist_ok=True)
    return LocalDirectoryStorage(root)
