"""Finalising recordings: one seekable file per participant, with its facts.

Live parts are written for crash safety, not for replay: live WebM has no cues and no
duration. Finalising remuxes the parts, by packet copy (never re-encoding), into a WebM
with cues and duration or an MP4 with its index up front, then hashes the result.

The same path recovers the files a process left behind when it died mid-call: every part
is read for as long as it demuxes (a truncated last cluster or fragment is dropped), the
result is marked interrupted. A JSON manifest next to the parts, written before the first
part is opened, tells recovery whose recording it is and where it sits on the call clock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import av
import av.container
import av.error
import av.packet
import av.stream

from recorder.frames import MediaKind
from recorder.segments import ContainerKind

log = logging.getLogger(__name__)

MANIFEST_SUFFIX: Final = ".recording.json"
TMP_SUFFIX: Final = ".tmp"
MANIFEST_FORMAT: Final = "inboxcall-recording/1"
MIME_TYPES: Final[dict[ContainerKind, str]] = {"webm": "video/webm", "mp4": "video/mp4"}
_HASH_CHUNK: Final = 1 << 20


class RecordingError(Exception):
    """A recording cannot be finalised or recovered; the message says which and why."""


@dataclass(frozen=True, slots=True)
class FinalisedRecording:
    """One participant's finished recording and the facts a reviewer's player needs.

    ``start_offset`` and ``duration`` are seconds on the call clock (zero = the call's
    recording start, shared by both participants); the file's own timestamps are on that
    clock too, so two files replayed at the same position are in sync.
    """

    call_id: str
    participant_id: str
    path: Path
    container: ContainerKind
    mime_type: str
    video_codec: str | None  # FFmpeg codec name: "vp8" or "h264"; None for a voice-only call
    audio_codec: str | None  # "opus"; None if the microphone never sent a frame
    start_offset: float
    duration: float
    size: int
    sha256: str
    video_frames: int
    audio_frames: int
    interrupted: bool
    call_started_at_unix: float | None = None  # the call clock's zero, in Unix time

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = self.path.name
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], directory: Path) -> FinalisedRecording:
        values = dict(data)
        values["path"] = directory / str(data["path"])
        return cls(**values)


@dataclass(slots=True)
class RecordingManifest:
    """The sidecar written next to a participant's parts (``<stem>.recording.json``)."""

    call_id: str
    participant_id: str
    stem: str
    started_at_unix: float
    parts: list[dict[str, str]] = field(default_factory=list)  # {"file", "container"}
    stream_offsets: dict[str, float] = field(default_factory=dict)
    finalised: dict[str, Any] | None = None
    # Unix time of the call clock's zero, shared by every participant of the call; lets
    # events stored elsewhere be placed on the recordings' timeline.
    call_started_at_unix: float | None = None
    format: str = MANIFEST_FORMAT

    @staticmethod
    def path_for(directory: Path, stem: str) -> Path:
        return directory / f"{stem}{MANIFEST_SUFFIX}"

    def save(self, directory: Path) -> None:
        """Atomically replace the manifest: a crash or a full disk leaves the old one or
        the new one, never a torn one and never an unreadable ``.tmp`` beside it.

        The new text is written to ``<manifest>.tmp`` and fsync'ed before the rename (else
        a power cut can leave the renamed file empty), then the folder is fsync'ed so the
        rename itself survives. A write that fails (ENOSPC) removes its ``.tmp`` and raises.
        """
        target = self.path_for(directory, self.stem)
        tmp = target.with_name(target.name + TMP_SUFFIX)
        data = json.dumps(asdict(self), indent=2, sort_keys=True).encode("utf-8")
        try:
            with tmp.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_directory(directory)

    @classmethod
    def load(cls, path: Path) -> RecordingManifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RecordingError(f"unreadable recording manifest {path.name}: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise RecordingError(f"{path.name} is not an inboxcall recording manifest")
        try:
            return cls(**data)
        except TypeError as exc:
            raise RecordingError(f"malformed recording manifest {path.name}: {exc}") from exc


@dataclass(slots=True)
class RemuxOutcome:
    container: ContainerKind
    video_codec: str | None
    audio_codec: str | None
    start: float
    end: float
    video_frames: int
    audio_frames: int
    truncated: bool


def remux_parts(
    parts: list[Path], output: Path, *, tolerant: bool, log_context: str = "recording"
) -> RemuxOutcome:
    """Copy every packet of ``parts`` (in order) into one seekable file at ``output``.

    With ``tolerant`` a part that stops demuxing (truncated by a crash) ends the copy of
    that part instead of failing. The output's container follows the video codec: H264
    goes to MP4, everything else to WebM.
    """
    inputs: list[av.container.InputContainer] = []
    opened: list[Path] = []
    try:
        for part in parts:
            try:
                inputs.append(av.open(str(part), "r"))
                opened.append(part)
            except (av.error.FFmpegError, OSError) as exc:
                if not tolerant:
                    raise RecordingError(f"cannot open part {part.name}: {exc}") from exc
                log.warning("%s: part %s unreadable, skipped: %s", log_context, part.name, exc)
        # A stream only becomes an output track if it carries packets: a live part always
        # declares audio, and an empty track can stall a player waiting for its data.
        templates: dict[MediaKind, av.stream.Stream] = {}
        for container, part in zip(inputs, opened, strict=True):
            for kind in _kinds_with_packets(part):
                if kind not in templates:
                    templates[kind] = next(s for s in container.streams if s.type == kind)
        if not templates:
            raise RecordingError("no audio or video stream in any recording part")
        video_codec = templates["video"].codec_context.name if "video" in templates else None
        audio_codec = templates["audio"].codec_context.name if "audio" in templates else None
        container_kind: ContainerKind = "mp4" if video_codec == "h264" else "webm"
        return _copy_packets(
            inputs,
            templates,
            output,
            container_kind=container_kind,
            video_codec=video_codec,
            audio_codec=audio_codec,
            tolerant=tolerant,
            log_context=log_context,
        )
    finally:
        for container in inputs:
            container.close()


def _kinds_with_packets(part: Path) -> set[MediaKind]:
    """Which of audio/video have at least one packet in ``part`` (reads only until known)."""
    found: set[MediaKind] = set()
    try:
        with av.open(str(part), "r") as container:
            declared = {s.type for s in container.streams if s.type in ("audio", "video")}
            for packet in container.demux():
                if packet.dts is None:
                    continue
                found.add("video" if packet.stream.type == "video" else "audio")
                if found >= declared:
                    break
    except (av.error.FFmpegError, EOFError):
        pass  # truncated: whatever was found so far is what the copy will find too
    return found


def _copy_packets(
    inputs: list[av.container.InputContainer],
    templates: dict[MediaKind, av.stream.Stream],
    output: Path,
    *,
    container_kind: ContainerKind,
    video_codec: str | None,
    audio_codec: str | None,
    tolerant: bool,
    log_context: str,
) -> RemuxOutcome:
    options = {"movflags": "+faststart"} if container_kind == "mp4" else {}
    tmp = output.with_name(output.name + ".tmp")
    out = av.open(str(tmp), "w", format=container_kind, container_options=options)
    counts: dict[MediaKind, int] = {"audio": 0, "video": 0}
    # Exact times (parts may differ in time base): a stream never goes backwards.
    last_time: dict[MediaKind, Fraction] = {}
    start: float | None = None
    end = 0.0
    truncated = False
    try:
        # opaque=True copies the decoder context: no encoder lookup, nothing is opened.
        out_streams = {
            kind: out.add_stream_from_template(template, opaque=True)
            for kind, template in templates.items()
        }
        for container in inputs:
            wanted = [s for s in container.streams if s.type in out_streams]
            try:
                for packet in container.demux(wanted):
                    if packet.dts is None or packet.pts is None or packet.is_corrupt:
                        continue  # demuxer flush packets, or damage
                    kind: MediaKind = "video" if packet.stream.type == "video" else "audio"
                    time_base = packet.time_base
                    assert time_base is not None
                    at = packet.pts * time_base
                    if kind in last_time and at <= last_time[kind]:
                        continue
                    last_time[kind] = at
                    begins = float(at)
                    ends = float((packet.pts + (packet.duration or 0)) * time_base)
                    start = begins if start is None else min(start, begins)
                    end = max(end, ends)
                    packet.stream = out_streams[kind]
                    out.mux(packet)
                    counts[kind] += 1
            except (av.error.FFmpegError, EOFError) as exc:
                if not tolerant:
                    raise RecordingError(f"part {container.name} does not demux: {exc}") from exc
                truncated = True
                log.warning(
                    "%s: part truncated after %d packets: %s",
                    log_context,
                    sum(counts.values()),
                    exc,
                )
        out.close()
    except BaseException:
        out.close()
        tmp.unlink(missing_ok=True)
        raise
    if start is None:
        tmp.unlink(missing_ok=True)
        raise RecordingError("the recording parts hold no media packets")
    os.replace(tmp, output)
    return RemuxOutcome(
        container=container_kind,
        video_codec=video_codec,
        audio_codec=audio_codec,
        start=start,
        end=end,
        video_frames=counts["video"],
        audio_frames=counts["audio"],
        truncated=truncated,
    )


def file_sha256(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a file, read in chunks (call it off the event loop)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def finalise_manifest(
    directory: Path, manifest: RecordingManifest, *, interrupted: bool
) -> FinalisedRecording:
    """Remux the manifest's parts into the final file, hash it, record it, drop the parts.

    Blocking: run it in a thread.
    """
    parts = [directory / part["file"] for part in manifest.parts]
    existing = [p for p in parts if p.exists()]
    if not existing:
        raise RecordingError(f"recording {manifest.stem}: no part files on disk")
    staging = directory / f"{manifest.stem}.final"
    context = f"call {manifest.call_id}: {manifest.stem}"
    try:
        outcome = remux_parts(existing, staging, tolerant=interrupted, log_context=context)
    except RecordingError:
        if interrupted:
            raise
        # A part that will not demux cleanly is damage, not a reason to lose the call.
        log.exception("%s: clean finalise failed, recovering what demuxes", context)
        interrupted = True
        outcome = remux_parts(existing, staging, tolerant=True, log_context=context)
    final_path = directory / f"{manifest.stem}.{outcome.container}"
    os.replace(staging, final_path)
    size, sha256 = file_sha256(final_path)
    recording = FinalisedRecording(
        call_id=manifest.call_id,
        participant_id=manifest.participant_id,
        path=final_path,
        container=outcome.container,
        mime_type=MIME_TYPES[outcome.container],
        video_codec=outcome.video_codec,
        audio_codec=outcome.audio_codec,
        start_offset=round(outcome.start, 6),
        duration=round(max(0.0, outcome.end - outcome.start), 6),
        size=size,
        sha256=sha256,
        video_frames=outcome.video_frames,
        audio_frames=outcome.audio_frames,
        interrupted=interrupted or outcome.truncated,
        call_started_at_unix=manifest.call_started_at_unix,
    )
    manifest.finalised = recording.to_json()
    manifest.save(directory)
    for part in existing:
        if part != final_path:
            part.unlink(missing_ok=True)
    return recording


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _manifest_path(path: Path) -> Path:
    if path.name.endswith(MANIFEST_SUFFIX):
        return path
    # A part file: "<stem>.part<N>.<ext>"
    stem = path.name.split(".part", 1)[0]
    return path.with_name(f"{stem}{MANIFEST_SUFFIX}")


def recover_recording(path: Path) -> FinalisedRecording:
    """Finalise what a dead process left on disk for one participant; marks it interrupted.

    ``path`` is the participant's manifest (``*.recording.json``) or one of its part
    files. Safe to call again: a recording that is already finalised is answered as is.
    Blocking: run it in a thread.
    """
    manifest_path = _manifest_path(Path(path))
    if not manifest_path.exists():
        raise RecordingError(f"no recording manifest for {Path(path).name}")
    manifest = RecordingManifest.load(manifest_path)
    directory = manifest_path.parent
    if manifest.finalised is not None:
        done = FinalisedRecording.from_json(manifest.finalised, directory)
        if done.path.exists():
            for part in manifest.parts:
                leftover = directory / part["file"]
                if leftover != done.path:
                    leftover.unlink(missing_ok=True)
            return done
    return finalise_manifest(directory, manifest, interrupted=True)


def recoverable_manifests(root: Path) -> list[Path]:
    """Every participant manifest under ``root`` (a call's folder or all of staging),
    after putting right what an older build, a crash or a full disk left beside them.

    - ``<manifest>.tmp`` next to its manifest: a save that never got renamed; removed.
    - ``<manifest>.tmp`` alone: a complete one (a crash between write and rename) takes
      the manifest's place; an empty or torn one is removed, and the manifest rebuilt
      from the part files when there are any.
    - a manifest that does not parse, with part files: rebuilt from them.

    A manifest rebuilt from parts knows whose recording it is from the file names only
    when the participant id is its own stem (``participant_stem``); otherwise it is left
    alone, logged, for an operator. Blocking: run it in a thread.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    for tmp in sorted(root.rglob(f"*{MANIFEST_SUFFIX}{TMP_SUFFIX}")):
        _settle_leftover_tmp(tmp)
    manifests = []
    for manifest_path in sorted(root.rglob(f"*{MANIFEST_SUFFIX}")):
        try:
            RecordingManifest.load(manifest_path)
        except RecordingError as exc:
            if not _rebuild_from_parts(manifest_path, str(exc)):
                continue
        manifests.append(manifest_path)
    for stem, directory in _parts_without_manifest(root):
        target = RecordingManifest.path_for(directory, stem)
        if _rebuild_from_parts(target, "no manifest beside the parts"):
            manifests.append(target)
    return sorted(manifests)


def _settle_leftover_tmp(tmp: Path) -> None:
    target = tmp.with_name(tmp.name.removesuffix(TMP_SUFFIX))
    if target.exists():
        log.warning("removing a stale %s left beside its manifest", tmp.name)
        tmp.unlink(missing_ok=True)
        return
    try:
        RecordingManifest.load(tmp)
    except RecordingError as exc:
        log.warning("removing an unreadable leftover %s: %s", tmp.name, exc)
        tmp.unlink(missing_ok=True)
        return
    log.warning("a complete %s was never renamed; it becomes the manifest", tmp.name)
    os.replace(tmp, target)


def _part_stem(part: Path) -> str | None:
    name = part.name
    if ".part" not in name or name.endswith((".tmp", ".final")):
        return None
    stem, _, rest = name.partition(".part")
    number, _, container = rest.partition(".")
    if not number.isdigit() or container not in MIME_TYPES:
        return None
    return stem


def _parts_of(directory: Path, stem: str) -> list[Path]:
    parts = [p for p in directory.glob(f"{stem}.part*") if _part_stem(p) == stem]
    return sorted(parts, key=lambda p: int(p.name.partition(".part")[2].partition(".")[0]))


def _parts_without_manifest(root: Path) -> list[tuple[str, Path]]:
    found: set[tuple[str, Path]] = set()
    for part in root.rglob("*.part*"):
        stem = _part_stem(part)
        if stem is not None and not RecordingManifest.path_for(part.parent, stem).exists():
            found.add((stem, part.parent))
    return sorted(found)


def _rebuild_from_parts(manifest_path: Path, problem: str) -> bool:
    """Write a manifest from the part files beside ``manifest_path``; False when that is
    not possible (no parts, or a hashed stem that does not name the participant)."""
    directory = manifest_path.parent
    stem = manifest_path.name.removesuffix(MANIFEST_SUFFIX)
    parts = _parts_of(directory, stem)
    if not parts:
        log.warning(
            "skipping recording manifest %s (%s): no part files", manifest_path.name, problem
        )
        return False
    if stem.startswith("p-"):
        log.error(
            "recording manifest %s (%s): its parts cannot be matched to a participant; "
            "left in staging for an operator",
            manifest_path.name,
            problem,
        )
        return False
    manifest = RecordingManifest(
        call_id=directory.name,
        participant_id=stem,
        stem=stem,
        started_at_unix=min(p.stat().st_mtime for p in parts),
        parts=[{"file": p.name, "container": p.name.rsplit(".", 1)[1]} for p in parts],
    )
    manifest.save(directory)
    log.warning(
        "recording manifest %s (%s): rebuilt from %d part file(s)",
        manifest_path.name,
        problem,
        len(parts),
    )
    return True


def find_unfinished_recordings(root: Path) -> list[Path]:
    """Manifests under ``root`` whose recording was never finalised (the process died)."""
    unfinished: list[Path] = []
    for manifest_path in recoverable_manifests(Path(root)):
        try:
            manifest = RecordingManifest.load(manifest_path)
        except RecordingError:
            log.warning("skipping unreadable recording manifest %s", manifest_path.name)
            continue
        if manifest.finalised is None:
            unfinished.append(manifest_path)
    return unfinished
