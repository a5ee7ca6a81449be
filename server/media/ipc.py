"""The wire between the serving process and a media worker: length-prefixed JSON frames.

One stream socket (a ``socketpair``) per worker. Three kinds of frame:

* request, serving process -> worker: ``{"id": n, "op": "...", "args": {...}}``
* reply, worker -> serving process: ``{"id": n, "result": ...}`` or
  ``{"id": n, "error": {"type", "code", "message", "retryable"}}``
* event, worker -> serving process: ``{"event": "...", ...}`` (``ready``, ``leg_state``,
  ``failure``, ``load``)

When either side goes away the other reads end-of-file: a worker whose serving process
died exits at once, and the serving process fails the dead worker's calls.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from recorder import FinalisedRecording, RecorderStats
from recorder.call_recorder import ParticipantRecordingStats
from server.media.call_media import CallMediaStats
from signaling.media_bridge import BridgeStats, StreamStats
from signaling.media_errors import (
    InvalidCandidateError,
    MediaBridgeError,
    MediaNegotiationError,
    UnknownParticipantError,
)

MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
_HEADER: Final = 4


class IpcError(Exception):
    """The other side sent something that is not a frame of this protocol."""


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next frame, or None at end-of-file."""
    try:
        header = await reader.readexactly(_HEADER)
    except asyncio.IncompleteReadError:
        return None
    size = int.from_bytes(header, "big")
    if size > MAX_FRAME_BYTES:
        raise IpcError(f"frame of {size} bytes is over the {MAX_FRAME_BYTES} limit")
    try:
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None
    frame = json.loads(body)
    if not isinstance(frame, dict):
        raise IpcError("a frame must be a JSON object")
    return frame


def write_frame(writer: asyncio.StreamWriter, frame: dict[str, Any]) -> None:
    body = json.dumps(frame, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME_BYTES:
        raise IpcError(f"frame of {len(body)} bytes is over the {MAX_FRAME_BYTES} limit")
    writer.write(len(body).to_bytes(_HEADER, "big") + body)


# --- errors across the wire ---------------------------------------------------------------


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, MediaBridgeError):
        return {
            "type": type(exc).__name__,
            "code": exc.code,
            "message": exc.message,
            "retryable": exc.retryable,
        }
    return {"type": "internal", "code": "internal", "message": type(exc).__name__}


class RemoteMediaError(Exception):
    """The worker failed a request for a reason that is not a media refusal."""


def error_from_wire(error: dict[str, Any]) -> Exception:
    kind = error.get("type")
    code = str(error.get("code", "internal"))
    message = str(error.get("message", ""))
    retryable = bool(error.get("retryable", False))
    if kind == "InvalidCandidateError":
        return InvalidCandidateError(message)
    if kind == "UnknownParticipantError":
        return UnknownParticipantError(message)
    if kind == "MediaNegotiationError":
        return MediaNegotiationError(code, message, retryable=retryable)
    if kind in ("MediaBridgeError",):
        return MediaBridgeError(code, message, retryable=retryable)
    return RemoteMediaError(f"the media worker failed: {message}")


# --- values across the wire ---------------------------------------------------------------


def stats_to_wire(stats: CallMediaStats) -> dict[str, Any]:
    return {
        "bridge": asdict(stats.bridge),
        "recorder": asdict(stats.recorder) if stats.recorder is not None else None,
    }


def stats_from_wire(data: dict[str, Any]) -> CallMediaStats:
    bridge = dict(data["bridge"])
    bridge["streams"] = tuple(StreamStats(**s) for s in bridge["streams"])
    recorder: RecorderStats | None = None
    if data.get("recorder") is not None:
        values = dict(data["recorder"])
        values["participants"] = {
            pid: ParticipantRecordingStats(**p) for pid, p in values["participants"].items()
        }
        recorder = RecorderStats(**values)
    return CallMediaStats(bridge=BridgeStats(**bridge), recorder=recorder)


def recording_to_wire(recording: FinalisedRecording) -> dict[str, Any]:
    data = recording.to_json()
    data["directory"] = str(recording.path.parent)
    return data


def recording_from_wire(data: dict[str, Any]) -> FinalisedRecording:
    values = dict(data)
    directory = Path(values.pop("directory"))
    return FinalisedRecording.from_json(values, directory)
