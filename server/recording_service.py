"""Storing every call's recordings: the call's media host (``server.media``) records it
and finalises the files at call end; this service stores them (checksum verified), writes
a row per participant and hands the call to the review lifecycle
(``server.review.service.decide_review``). At start-up, recordings of calls that were live
when the process died are finalised from disk and marked interrupted.

An upload that fails leaves its file in staging and a row in state ``pending_upload`` (so a
drawn call is queued for review at once, its player saying the recording is on its way);
an owned task retries such uploads with exponential backoff until they are stored.

Everything heavy (remuxing, hashing, uploads) runs in the recorder's threads or
``asyncio.to_thread``; the loop only awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recorder import FinalisedRecording, recover_recording, recoverable_manifests
from recorder.finalise import MANIFEST_SUFFIX
from recorder.storage import LocalDirectoryStorage, RecordingStorage, S3Storage
from server.clock import utcnow
from server.db.models import Call, Recording
from server.log_context import log_context
from server.review.service import decide_review, hold_for_recording
from server.settings import Settings
from server.webhooks import events as webhook_events

log = logging.getLogger(__name__)


RecordingStore = RecordingStorage


async def check_store(store: RecordingStore) -> None:
    """Readiness: the storage answers (a missing probe object is a fine answer)."""
    await store.exists("readiness-probe")


DELETABLE_STATES = ("finalised", "interrupted")
# Finalised in staging, its upload failed: the retry task stores it (state then finalised
# or interrupted). Retention never touches it: its bytes are not in storage yet.
PENDING_UPLOAD = "pending_upload"


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


@dataclass(slots=True)
class RecordingCounters:
    """Counted per recording (never per frame); read by the metrics at scrape time."""

    stored: int = 0
    store_failed: int = 0
    """Files that could not be uploaded (kept in staging for the next start-up)."""
    recovery_failed: int = 0
    """Left-over recordings that could not be recovered at start-up."""


class RecordingService:
    def __init__(
        self, settings: Settings, db: async_sessionmaker[AsyncSession], store: RecordingStore
    ) -> None:
        self._settings = settings
        self._db = db
        self._store = store
        self._staging = settings.recording_staging_dir
        # Finalised recordings whose upload failed, by call: what the retry task stores.
        self._pending: dict[str, dict[str, FinalisedRecording]] = {}
        self._pending_added = asyncio.Event()
        self._retry_task: asyncio.Task[None] | None = None
        self._retry_round_done = asyncio.Condition()
        self.counters = RecordingCounters()

    async def call_ended(self, call_id: str, recordings: Sequence[FinalisedRecording]) -> None:
        """Store the call's finished recordings (made by its media host), then decide on
        review."""
        with log_context(call_id=call_id):
            await self._store_results(call_id, list(recordings))

    async def _store_results(self, call_id: str, results: list[FinalisedRecording]) -> None:
        """Store what can be stored, write a row per recording, and always hand the call to
        the review lifecycle.

        A file whose upload fails stays in staging (finalised), gets a ``pending_upload``
        row and is retried by the upload task; only stored files leave staging.
        """
        stored: list[FinalisedRecording] = []
        waiting: list[FinalisedRecording] = []
        for result in results:
            try:
                await self._store.put(_storage_key(result), result.path)
            except Exception:
                self.counters.store_failed += 1
                log.exception("call %s: storing a recording failed; it will be retried", call_id)
                waiting.append(result)
                continue
            stored.append(result)
        async with self._db() as session, session.begin():
            call = await session.get(Call, call_id, with_for_update=True)
            if call is None:
                log.error("call %s: recordings finalised for an unknown call", call_id)
                return
            hold = await hold_for_recording(session, call_id)
            announce: list[Recording] = []
            for result in stored:
                row = await _write_row(session, result, state=_stored_state(result), hold=hold)
                if row is not None:
                    announce.append(row)
            for result in waiting:
                await _write_row(session, result, state=PENDING_UPLOAD, hold=hold)
            starts = [r.call_started_at_unix for r in results if r.call_started_at_unix]
            if starts and call.recording_started_at is None:
                call.recording_started_at = datetime.fromtimestamp(min(starts), UTC)
            if any(result.interrupted for result in results):
                call.interrupted = True
            await session.flush()  # recording ids exist from here
            for row in announce:
                webhook_events.recording_stored(session, row)
            await decide_review(session, call, self._settings)
        # Counted once its row is committed: a stored recording is one the reviewer can find.
        self.counters.stored += len(stored)
        await asyncio.to_thread(_remove_stored, self._staging / call_id, stored)
        if waiting:
            by_participant = self._pending.setdefault(call_id, {})
            by_participant.update({r.participant_id: r for r in waiting})
            self._pending_added.set()
        log.info(
            "call %s: %d of %d recording(s) stored, %d waiting for upload",
            call_id,
            len(stored),
            len(results),
            len(waiting),
        )

    @property
    def uploads_waiting(self) -> int:
        return sum(len(v) for v in self._pending.values())

    async def next_retry_round(self) -> int:
        """Wait for the upload task's next round; answer the uploads still waiting then."""
        async with self._retry_round_done:
            await self._retry_round_done.wait()
        return self.uploads_waiting

    def start(self) -> None:
        """Start retrying failed uploads (the service owns the task; ``aclose`` ends it)."""
        if self._retry_task is None:
            self._retry_task = asyncio.create_task(self._retry_uploads(), name="upload-retry")

    async def _retry_uploads(self) -> None:
        """Retry every waiting upload, backing off exponentially while storage keeps failing
        (an outage is usually the storage's, not one file's), back to the first delay once
        everything is stored."""
        first = self._settings.upload_retry_initial_seconds
        failures = 0
        while True:
            if not self._pending:
                failures = 0
                self._pending_added.clear()
                await self._pending_added.wait()
            delay = min(first * 2**failures, self._settings.upload_retry_max_seconds)
            # Jitter: nodes sharing one storage do not all come back to it at once.
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            for call_id in list(self._pending):
                results = await asyncio.to_thread(_still_staged, self._pending.pop(call_id))
                try:
                    await self._store_results(call_id, results)
                except Exception:
                    # The database failed after (or before) the uploads: try it all again.
                    log.exception("call %s: retrying the upload failed", call_id)
                    self._pending.setdefault(call_id, {}).update(
                        {r.participant_id: r for r in results}
                    )
            failures = min(failures + 1, 30) if self._pending else 0  # 2**30 caps any delay
            async with self._retry_round_done:
                self._retry_round_done.notify_all()
            if self._pending:
                log.warning(
                    "%d recording(s) still waiting for upload; next try in about %.0f s",
                    self.uploads_waiting,
                    min(first * 2**failures, self._settings.upload_retry_max_seconds),
                )

    async def recover_interrupted(self) -> list[str]:
        """Store what a previous process left in staging: recordings it was still writing
        (finalised now from disk and marked interrupted) and finalised ones it had not
        stored yet."""
        if not self._staging.exists():
            return []
        manifests = await asyncio.to_thread(recoverable_manifests, self._staging)
        by_call: dict[str, list[FinalisedRecording]] = {}
        for manifest in manifests:
            try:
                result = await asyncio.to_thread(recover_recording, manifest)
            except Exception:
                self.counters.recovery_failed += 1
                log.exception("could not recover recording %s", manifest.name)
                continue
            by_call.setdefault(result.call_id, []).append(result)
        for call_id, results in by_call.items():
            self._pending.pop(call_id, None)  # stored from what is on disk now
            with log_context(call_id=call_id):
                await self._store_results(call_id, results)
        return sorted(by_call)

    async def aclose(self) -> None:
        """Stop retrying uploads (safe twice): what still waits stays in staging, and the
        next start stores it."""
        task, self._retry_task = self._retry_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _storage_key(result: FinalisedRecording) -> str:
    return f"{result.call_id}/{result.path.name}"


def _stored_state(result: FinalisedRecording) -> str:
    return "interrupted" if result.interrupted else "finalised"


async def _write_row(
    session: AsyncSession, result: FinalisedRecording, *, state: str, hold: str
) -> Recording | None:
    """The participant's recording row, created or brought up to date (never back from
    stored to waiting, never out of a tombstone). Answers the row when it now holds newly
    stored bytes (to announce): a file stored again after a crash, same checksum, is not."""
    row = (
        await session.scalars(
            select(Recording).where(
                Recording.call_id == result.call_id,
                Recording.participant_id == result.participant_id,
            )
        )
    ).first()
    if row is None:
        row = Recording(call_id=result.call_id, participant_id=result.participant_id, hold=hold)
        session.add(row)
    elif row.state == "deleted" or (state == PENDING_UPLOAD and row.state in DELETABLE_STATES):
        return None
    newly_stored = state != PENDING_UPLOAD and (
        row.sha256 != result.sha256 or row.state == PENDING_UPLOAD
    )
    row.storage_key = _storage_key(result)
    row.state = state
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
    return row if newly_stored else None


def _still_staged(waiting: dict[str, FinalisedRecording]) -> list[FinalisedRecording]:
    """The waiting recordings whose file is still in staging; one that vanished (an
    operator cleaned staging by hand) cannot be retried and is said so, once."""
    present = []
    for result in waiting.values():
        if result.path.exists():
            present.append(result)
        else:
            log.error(
                "call %s: a recording waiting for upload is gone from staging; its row stays %s",
                result.call_id,
                PENDING_UPLOAD,
            )
    return present


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
