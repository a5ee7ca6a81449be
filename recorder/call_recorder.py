"""Records a call's forwarded encoded frames: one file per participant, no re-encoding.

``CallRecorder`` is the bridge's frame sink (``signaling.media_sink.EncodedFrameSink``,
satisfied structurally). Its two entry points run on the event loop that carries media,
so they only enqueue: a worker thread owns every muxer and does all file I/O (DESIGN.md
section 4: loop lag is what destroys call quality). The queue is bounded; when it is full
frames are counted and dropped, never waited for.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import hashlib
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from recorder.bitstream import (
    OPUS_SAMPLE_RATE,
    OPUS_SILENCE_20MS,
    OPUS_SILENCE_SAMPLES,
    BitstreamError,
    black_keyframe,
    h264_keyframe_size,
    opus_packet_samples,
    vp8_keyframe_size,
)
from recorder.finalise import (
    FinalisedRecording,
    RecordingError,
    RecordingManifest,
    finalise_manifest,
)
from recorder.frames import MediaKind, RecordableFrame
from recorder.segments import LiveSegment, VideoCodecName, VideoTrack, container_for
from recorder.timeline import StreamTimeline

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING_FRAMES: Final = 1000
# Room above the frame bound for on/off events and the stop marker, which are never dropped
# for lack of space unless something floods them.
_CONTROL_HEADROOM: Final = 64
# The worker drains the intake in batches: waking it for every frame cost a thread switch
# and a GIL hand-off per frame (bench_bridge "recorded": +37 % server CPU per call). Stop
# and barrier items wake it at once. Crash loss grows by at most this much.
_DRAIN_INTERVAL_S: Final = 0.1
# How long audio waits in memory for the first video keyframe before an audio-only part is
# opened (a new part would be needed if video came later: see recorder.segments).
DEFAULT_AUDIO_GRACE_S: Final = 2.0
_SILENCE_S: Final = OPUS_SILENCE_SAMPLES / OPUS_SAMPLE_RATE
_MIN_STEP_S: Final = 0.001
_VIDEO_CODECS: Final[frozenset[str]] = frozenset({"VP8", "H264"})
_SAFE_STEM = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class ParticipantRecordingStats:
    """Counters for one participant; ``*_written`` counts packets in the live files."""

    video_frames_received: int = 0
    audio_frames_received: int = 0
    video_frames_written: int = 0
    audio_frames_written: int = 0
    dropped_queue_full: int = 0
    dropped_after_close: int = 0
    video_dropped_awaiting_keyframe: int = 0
    video_dropped_camera_off: int = 0
    dropped_unsupported_codec: int = 0
    dropped_after_error: int = 0
    black_frames_inserted: int = 0
    silence_frames_inserted: int = 0
    reanchors: int = 0
    parts: int = 0
    failed: bool = False


@dataclass(frozen=True, slots=True)
class RecorderStats:
    call_id: str
    queue_depth: int
    queue_high_water: int
    participants: dict[str, ParticipantRecordingStats]
    # CPU time the worker thread has used so far (muxing, file writes): what recording
    # costs beside the loop-side enqueueing.
    worker_cpu_seconds: float = 0.0


@dataclass(slots=True)
class _IntakeCounters:
    """Counted on the event loop (the worker never touches these)."""

    next_seq: dict[MediaKind, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    dropped_queue_full: int = 0
    dropped_after_close: int = 0


@dataclass(slots=True)
class _FrameItem:
    frame: RecordableFrame
    seq: int


@dataclass(slots=True)
class _StateItem:
    participant_id: str
    kind: MediaKind
    enabled: bool
    at: float


@dataclass(slots=True)
class _StopItem:
    at: float


@dataclass(slots=True)
class _BarrierItem:
    reached: concurrent.futures.Future[None]


_QueueItem = _FrameItem | _StateItem | _StopItem | _BarrierItem


def _describe(exc: BaseException) -> str:
    """An error as a short phrase without paths (``OSError: [Errno 28] No space...``)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__} errno {exc.errno} {os.strerror(exc.errno)}"
    return type(exc).__name__


def participant_stem(participant_id: str) -> str:
    """A file-name-safe stem for a participant: the id itself when it is already safe."""
    if _SAFE_STEM.fullmatch(participant_id):
        return participant_id
    return "p-" + hashlib.sha256(participant_id.encode("utf-8")).hexdigest()[:24]


class _ParticipantWriter:
    """One participant's recording state; lives on the worker thread only."""

    def __init__(
        self,
        call_id: str,
        participant_id: str,
        *,
        stem: str,
        directory: Path,
        started_at_unix: float,
        call_started_at_unix: float | None,
        audio_grace: float,
    ) -> None:
        self.call_id = call_id
        self.participant_id = participant_id
        self.stem = stem
        self.directory = directory
        self.audio_grace = audio_grace
        self.manifest = RecordingManifest(
            call_id=call_id,
            participant_id=participant_id,
            stem=stem,
            started_at_unix=started_at_unix,
            call_started_at_unix=call_started_at_unix,
        )
        self.segment: LiveSegment | None = None
        self.failed = False
        self._closed_parts_bytes = 0
        # Audio that arrived before the first video keyframe: (pts, data, seconds).
        self.pending_audio: list[tuple[float, bytes, float]] = []
        self.timelines: dict[MediaKind, StreamTimeline] = {}
        self.last_pts: dict[MediaKind, float] = {}
        self.last_seq: dict[MediaKind, int] = {}
        self.audio_end: float | None = None
        self.audio_enabled = True
        self.video_enabled = True
        self.video_codec: VideoCodecName | None = None
        self.video_size: tuple[int, int] | None = None
        self.need_keyframe = True
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "video_frames_received",
                "audio_frames_received",
                "video_frames_written",
                "audio_frames_written",
                "video_dropped_awaiting_keyframe",
                "video_dropped_camera_off",
                "dropped_unsupported_codec",
                "dropped_after_error",
                "black_frames_inserted",
                "silence_frames_inserted",
            ),
            0,
        )

    # -- frames -------------------------------------------------------------------------

    def on_frame(self, frame: RecordableFrame, seq: int, wall_offset: float) -> None:
        kind = frame.kind
        self.counts[f"{kind}_frames_received"] += 1
        previous_seq = self.last_seq.get(kind)
        self.last_seq[kind] = seq
        if self.failed:
            self.counts["dropped_after_error"] += 1
            return
        if kind == "video":
            # A frame lost to a full queue breaks the reference chain: wait for a keyframe.
            if previous_seq is not None and seq != previous_seq + 1:
                self.need_keyframe = True
            self._on_video(frame, wall_offset)
        else:
            self._on_audio(frame, wall_offset)

    def _on_video(self, frame: RecordableFrame, wall_offset: float) -> None:
        codec = frame.codec.upper()
        if codec not in _VIDEO_CODECS or (
            self.video_codec is not None and codec != self.video_codec
        ):
            # One file holds one video codec; the bridge pins it for the whole call.
            self.counts["dropped_unsupported_codec"] += 1
            return
        if not self.video_enabled:
            # In flight after camera-off, or the browser's own black frames: the black
            # keyframe already stands for the whole off period.
            self.counts["video_dropped_camera_off"] += 1
            return
        if self.need_keyframe and not frame.keyframe:
            self.counts["video_dropped_awaiting_keyframe"] += 1
            return
        if frame.keyframe:
            try:
                size = (
                    vp8_keyframe_size(frame.data)
                    if codec == "VP8"
                    else h264_keyframe_size(frame.data)
                )
            except BitstreamError as exc:
                log.warning("call %s: %s: unusable keyframe: %s", self.call_id, self.stem, exc)
                if self.need_keyframe:
                    self.counts["video_dropped_awaiting_keyframe"] += 1
                    return
            else:
                self.video_size = size
                self.video_codec = "VP8" if codec == "VP8" else "H264"
                self.need_keyframe = False
        timeline = self._timeline("video", frame.clock_rate)
        pts = self._next_pts("video", timeline.media_time(frame.rtp_timestamp, wall_offset))
        segment = self._video_segment()
        segment.write("video", frame.data, pts, frame.keyframe)
        self.last_pts["video"] = pts
        self.counts["video_frames_written"] += 1

    def _on_audio(self, frame: RecordableFrame, wall_offset: float) -> None:
        if frame.codec.lower() != "opus":
            self.counts["dropped_unsupported_codec"] += 1
            return
        timeline = self._timeline("audio", frame.clock_rate)
        pts = timeline.media_time(frame.rtp_timestamp, wall_offset)
        self._fill_silence_until(pts)
        seconds = opus_packet_samples(frame.data) / OPUS_SAMPLE_RATE
        self._write_audio(frame.data, self._next_pts("audio", pts), seconds)
        self.counts["audio_frames_written"] += 1

    def _fill_silence_until(self, until: float) -> None:
        """Fill an audio gap (microphone off, DTX, loss) with 20 ms silence frames.

        Chromium runs its audio clock off the decoded samples, so a gap in audio
        timestamps would pull audio ahead of video for the rest of the replay.
        """
        if self.audio_end is None:
            return
        # Times are intended (unrounded) seconds; allow a millisecond of float noise.
        missing = math.floor((until - self.audio_end + _MIN_STEP_S) / _SILENCE_S)
        for _ in range(missing):
            assert self.audio_end is not None
            self._write_audio(OPUS_SILENCE_20MS, self.audio_end, _SILENCE_S)
            self.counts["silence_frames_inserted"] += 1

    def _write_audio(self, data: bytes, pts: float, seconds: float) -> None:
        if self.segment is None:
            self.pending_audio.append((pts, data, seconds))
            self.last_pts["audio"] = pts
            self.audio_end = pts + seconds
            if pts - self.pending_audio[0][0] >= self.audio_grace:
                # No video keyframe yet: a voice-only start. Keep it crash-safe on disk.
                self._open_part(video=None)
            return
        # The part rounds to its ticks and keeps them increasing; the intended times stay
        # here so that gaps are measured without the rounding.
        self.segment.write("audio", data, pts, True, seconds)
        self.last_pts["audio"] = pts
        self.audio_end = pts + seconds

    def _next_pts(self, kind: MediaKind, pts: float) -> float:
        last = self.last_pts.get(kind)
        if last is not None and pts < last + _MIN_STEP_S:
            return last + _MIN_STEP_S
        return pts

    def _timeline(self, kind: MediaKind, clock_rate: int) -> StreamTimeline:
        timeline = self.timelines.get(kind)
        if timeline is None or timeline.clock_rate != clock_rate:
            timeline = self.timelines[kind] = StreamTimeline(clock_rate)
        return timeline

    # -- parts --------------------------------------------------------------------------

    def _video_segment(self) -> LiveSegment:
        if self.segment is not None and self.segment.has_video:
            return self.segment
        assert self.video_codec is not None and self.video_size is not None
        width, height = self.video_size
        return self._open_part(video=VideoTrack(self.video_codec, width, height))

    @property
    def bytes_written(self) -> int:
        """Media bytes written to this participant's parts so far."""
        live = self.segment.bytes_written if self.segment is not None else 0
        return self._closed_parts_bytes + live

    def _close_segment(self) -> None:
        segment, self.segment = self.segment, None
        if segment is not None:
            self._closed_parts_bytes += segment.bytes_written
            segment.close()

    def _open_part(self, video: VideoTrack | None) -> LiveSegment:
        self._close_segment()
        container = container_for(video.codec if video is not None else None)
        name = f"{self.stem}.part{len(self.manifest.parts)}.{container}"
        self.directory.mkdir(parents=True, exist_ok=True)
        # The manifest names the part before the part exists, so recovery finds it.
        self.manifest.parts.append({"file": name, "container": container})
        try:
            self._save_offsets()
        except BaseException:
            self.manifest.parts.pop()  # never opened: nothing for finalising to look for
            raise
        segment = LiveSegment(self.directory / name, container, video, audio=True)
        self.segment = segment
        log.info(
            "call %s: %s: recording part %d (%s, video %s)",
            self.call_id,
            self.stem,
            len(self.manifest.parts) - 1,
            container,
            video.codec if video else "none",
        )
        pending, self.pending_audio = self.pending_audio, []
        for pts, data, seconds in pending:
            segment.write("audio", data, pts, True, seconds)
        return segment

    def _save_offsets(self) -> None:
        for kind, timeline in self.timelines.items():
            if timeline.start_offset is not None:
                self.manifest.stream_offsets[kind] = round(timeline.start_offset, 6)
        self.manifest.save(self.directory)

    # -- on/off -------------------------------------------------------------------------

    def on_media_state(self, kind: MediaKind, enabled: bool, wall_offset: float | None) -> None:
        if self.failed:
            return
        if kind == "audio":
            # Nothing to write now: the gap is filled with silence when audio resumes
            # (or at the end of the call), see _fill_silence_until.
            self.audio_enabled = enabled
            return
        if enabled:
            self.video_enabled = True
            return  # the bridge asks for a keyframe; need_keyframe is already set
        if not self.video_enabled:
            return
        self.video_enabled = False
        self.need_keyframe = True
        if (
            wall_offset is None
            or self.segment is None
            or not self.segment.has_video
            or self.video_codec is None
            or self.video_size is None
        ):
            return  # no picture yet, so nothing can look frozen
        # Without this the player would hold the last live picture for the whole off
        # period, as if the participant were still there and motionless.
        data = black_keyframe(self.video_codec, *self.video_size)
        pts = self._next_pts("video", wall_offset)
        self.segment.write("video", data, pts, True)
        self.last_pts["video"] = pts
        self.counts["black_frames_inserted"] += 1

    # -- end ----------------------------------------------------------------------------

    def finish(self, end_offset: float | None) -> None:
        if self.failed:
            return
        if (
            not self.audio_enabled
            and end_offset is not None
            and self.audio_end is not None
            and end_offset > self.audio_end
        ):
            # Microphone off until hang-up: keep the timeline to the end of the call.
            self._fill_silence_until(end_offset)
        if self.segment is None and self.pending_audio:
            self._open_part(video=None)
        if self.segment is not None:
            self._save_offsets()
            self._close_segment()

    def fail(self) -> None:
        self.failed = True
        try:
            self._close_segment()
        except Exception:
            log.exception("call %s: %s: closing a failed part", self.call_id, self.stem)

    def stats(self, intake: _IntakeCounters) -> ParticipantRecordingStats:
        return ParticipantRecordingStats(
            **self.counts,
            dropped_queue_full=intake.dropped_queue_full,
            dropped_after_close=intake.dropped_after_close,
            reanchors=sum(t.reanchors for t in self.timelines.values()),
            parts=len(self.manifest.parts),
            failed=self.failed,
        )


RecordingFailureListener = Callable[[str], None]
"""``on_failure(reason)``: a participant's recording stopped for good mid-call (a write
failed -- a full disk, say -- or the call went over its staging budget). Called once per
recorder, on the event loop that created it; the reason names the cause, never a person."""


class CallRecorder:
    """Records both participants of one call into ``directory``; see the module docstring.

    Files: ``<stem>.part<N>.<webm|mp4>`` while live, ``<stem>.recording.json`` (the
    manifest recovery reads), and after ``aclose()`` the final ``<stem>.<webm|mp4>``.

    ``max_staging_bytes`` caps the media bytes the call writes (both participants
    together): past it every participant's recording stops and ``on_failure`` is told,
    so that one call cannot fill the staging disk (which would fail every other call).
    A call that is not recorded must not go on: the owner of ``on_failure`` ends it.
    """

    def __init__(
        self,
        call_id: str,
        directory: Path | str,
        *,
        max_pending_frames: int = DEFAULT_MAX_PENDING_FRAMES,
        audio_grace: float = DEFAULT_AUDIO_GRACE_S,
        request_keyframe: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        max_staging_bytes: int | None = None,
        on_failure: RecordingFailureListener | None = None,
    ) -> None:
        if max_pending_frames < 1:
            raise ValueError("max_pending_frames must be at least 1")
        if max_staging_bytes is not None and max_staging_bytes < 1:
            raise ValueError("max_staging_bytes must be at least 1")
        self.call_id = call_id
        self.directory = Path(directory)
        self._max_pending = max_pending_frames
        self._audio_grace = audio_grace
        self._request_keyframe = request_keyframe
        self._clock = clock
        self._wall_clock = wall_clock
        self._max_staging_bytes = max_staging_bytes
        self._on_failure = on_failure
        # The worker thread reports failures through the loop that owns the listener.
        self._loop = asyncio.get_running_loop() if on_failure is not None else None
        self._failure: str | None = None
        # deque.append and popleft are atomic: the loop side never takes a lock or wakes
        # the worker for a frame.
        self._pending: collections.deque[_QueueItem] = collections.deque()
        self._wake = threading.Event()
        self._worker_cpu = 0.0
        self._high_water = 0
        self._intake: dict[str, _IntakeCounters] = {}
        self._closing = False
        self._stop_sent = False
        self._close_lock = asyncio.Lock()
        self._result: list[FinalisedRecording] | None = None
        # Worker-owned state (read by stats() for counters only).
        self._writers: dict[str, _ParticipantWriter] = {}
        self._stems: set[str] = set()
        self._call_start: float | None = None
        self._done: concurrent.futures.Future[list[_ParticipantWriter]] = (
            concurrent.futures.Future()
        )
        self._thread = threading.Thread(target=self._run, name=f"recorder-{call_id}", daemon=True)
        self._thread.start()

    # -- event-loop side: never blocks ----------------------------------------------------

    def on_frame(self, frame: RecordableFrame) -> None:
        intake = self._intake.get(frame.participant_id)
        if intake is None:
            intake = self._intake[frame.participant_id] = _IntakeCounters()
        if self._closing:
            intake.dropped_after_close += 1
            return
        seq = intake.next_seq[frame.kind]
        intake.next_seq[frame.kind] = seq + 1
        depth = len(self._pending)
        if depth >= self._max_pending:
            self._drop_queue_full(frame, intake)
            return
        self._pending.append(_FrameItem(frame, seq))
        self._high_water = max(self._high_water, depth + 1)

    def on_media_state(
        self, participant_id: str, kind: MediaKind, enabled: bool, at: float
    ) -> None:
        if self._closing:
            return
        if len(self._pending) < self._max_pending + _CONTROL_HEADROOM:
            self._pending.append(_StateItem(participant_id, kind, enabled, at))
        else:
            log.error(
                "call %s: recorder queue full, lost a %s %s event",
                self.call_id,
                kind,
                "on" if enabled else "off",
            )

    def _drop_queue_full(self, frame: RecordableFrame, intake: _IntakeCounters) -> None:
        intake.dropped_queue_full += 1
        if intake.dropped_queue_full == 1 or intake.dropped_queue_full % 500 == 0:
            log.warning(
                "call %s: recorder queue full (%d), %d frames dropped so far",
                self.call_id,
                self._max_pending,
                intake.dropped_queue_full,
            )
        if frame.kind == "video" and self._request_keyframe is not None:
            # The recording now waits for a keyframe; ask for one rather than for luck.
            self._request_keyframe(frame.participant_id)

    def stats(self) -> RecorderStats:
        participants: dict[str, ParticipantRecordingStats] = {}
        for participant_id, intake in list(self._intake.items()):
            writer = self._writers.get(participant_id)
            participants[participant_id] = (
                writer.stats(intake)
                if writer is not None
                else ParticipantRecordingStats(
                    dropped_queue_full=intake.dropped_queue_full,
                    dropped_after_close=intake.dropped_after_close,
                )
            )
        return RecorderStats(
            call_id=self.call_id,
            queue_depth=len(self._pending),
            queue_high_water=self._high_water,
            participants=participants,
            worker_cpu_seconds=self._worker_cpu,
        )

    async def wait_written(self) -> None:
        """Wait until everything handed over so far is in the live files (or dropped).

        For tests and orderly hand-overs; the media path never needs to wait.
        """
        if self._closing:
            return
        barrier = _BarrierItem(concurrent.futures.Future())
        self._pending.append(barrier)
        self._wake.set()
        await asyncio.wrap_future(barrier.reached)

    async def aclose(self) -> list[FinalisedRecording]:
        """Drain the queue, close the live parts and finalise one file per participant.

        Safe to call more than once (and concurrently): later calls answer the same list.
        """
        async with self._close_lock:
            if self._result is not None:
                return list(self._result)
            self._closing = True
            if not self._stop_sent:
                self._pending.append(_StopItem(self._clock()))
                self._wake.set()
                self._stop_sent = True
            writers = await asyncio.wrap_future(self._done)
            await asyncio.to_thread(self._thread.join)
            self._result = await asyncio.to_thread(self._finalise_all, writers)
            return list(self._result)

    # -- worker thread --------------------------------------------------------------------

    def _run(self) -> None:
        end_at: float | None = None
        try:
            while end_at is None:
                if not self._pending:
                    self._worker_cpu = time.thread_time()
                    self._wake.wait(_DRAIN_INTERVAL_S)
                    self._wake.clear()
                while self._pending:
                    item = self._pending.popleft()
                    if isinstance(item, _StopItem):
                        end_at = item.at
                        break
                    if isinstance(item, _BarrierItem):
                        item.reached.set_result(None)
                        continue
                    self._dispatch(item)
            end_offset = (
                None if self._call_start is None or end_at is None else end_at - self._call_start
            )
            for writer in self._writers.values():
                try:
                    writer.finish(end_offset)
                except Exception:
                    log.exception(
                        "call %s: %s: closing the recording failed", self.call_id, writer.stem
                    )
                    writer.fail()
        finally:
            self._done.set_result(list(self._writers.values()))

    def _dispatch(self, item: _FrameItem | _StateItem) -> None:
        if isinstance(item, _FrameItem):
            frame = item.frame
            if self._call_start is None:
                self._call_start = frame.arrival
            writer = self._writer(frame.participant_id)
            try:
                writer.on_frame(frame, item.seq, frame.arrival - self._call_start)
            except Exception as exc:
                self._writer_failed(writer, exc)
            else:
                self._check_budget()
            return
        writer = self._writer(item.participant_id)
        offset = None if self._call_start is None else item.at - self._call_start
        try:
            writer.on_media_state(item.kind, item.enabled, offset)
        except Exception as exc:
            self._writer_failed(writer, exc)

    def _writer_failed(self, writer: _ParticipantWriter, exc: Exception) -> None:
        log.error(
            "call %s: %s: recording failed, stopping it: %s",
            self.call_id,
            writer.stem,
            _describe(exc),
            exc_info=not isinstance(exc, OSError),
        )
        writer.fail()
        self._report_failure(f"writing the recording failed ({_describe(exc)})")

    def _check_budget(self) -> None:
        budget = self._max_staging_bytes
        if budget is None or self._failure is not None:
            return
        written = sum(w.bytes_written for w in self._writers.values())
        if written <= budget:
            return
        log.error(
            "call %s: the call wrote %d bytes, over its staging budget of %d: recording stopped",
            self.call_id,
            written,
            budget,
        )
        for writer in self._writers.values():
            writer.fail()
        self._report_failure(f"over the staging budget of {budget} bytes")

    def _report_failure(self, reason: str) -> None:
        """Tell the listener once (from the worker thread, through its loop)."""
        if self._failure is not None:
            return
        self._failure = reason
        if self._on_failure is None or self._loop is None or self._closing:
            return
        # A closed loop (RuntimeError) means nobody is left to end the call.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._on_failure, reason)

    @property
    def failure(self) -> str | None:
        """Why the recording stopped mid-call, or None while it records."""
        return self._failure

    def _writer(self, participant_id: str) -> _ParticipantWriter:
        writer = self._writers.get(participant_id)
        if writer is None:
            stem = participant_stem(participant_id)
            while stem in self._stems:
                stem = participant_stem(f"{participant_id}#{len(self._stems)}")
            self._stems.add(stem)
            writer = _ParticipantWriter(
                self.call_id,
                participant_id,
                stem=stem,
                directory=self.directory,
                started_at_unix=self._wall_clock(),
                call_started_at_unix=self._call_start_unix(),
                audio_grace=self._audio_grace,
            )
            self._writers[participant_id] = writer
        return writer

    def _call_start_unix(self) -> float | None:
        """The call clock's zero (the first frame's arrival) in Unix time."""
        if self._call_start is None:
            return None
        return self._call_start + (self._wall_clock() - self._clock())

    def _finalise_all(self, writers: list[_ParticipantWriter]) -> list[FinalisedRecording]:
        results: list[FinalisedRecording] = []
        for writer in writers:
            if not writer.manifest.parts:
                continue  # frames arrived but none could be recorded (e.g. no keyframe)
            try:
                recording = finalise_manifest(
                    self.directory, writer.manifest, interrupted=writer.failed
                )
            except (RecordingError, OSError):
                log.exception("call %s: %s: finalising failed", self.call_id, writer.stem)
                continue
            log.info(
                "call %s: %s: finalised %s, %.1f s, %d bytes%s",
                self.call_id,
                writer.stem,
                recording.container,
                recording.duration,
                recording.size,
                " (interrupted)" if recording.interrupted else "",
            )
            results.append(recording)
        return results
