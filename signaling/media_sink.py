"""What the media bridge hands to a recorder: the encoded frames it forwards.

The bridge calls a sink on the event loop for every forwarded frame, so a sink must
return at once (enqueue; do the muxing and file I/O on a worker thread).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

MediaKind = Literal["audio", "video"]


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded media frame as it crossed the bridge (never decoded).

    ``rtp_timestamp`` is the sender's RTP timestamp (unwrapped by the receiver, so it
    only grows) in units of ``clock_rate``; ``arrival`` is ``time.monotonic()`` when the
    bridge received it, a clock shared by every participant of the call.
    """

    participant_id: str
    kind: MediaKind
    codec: str  # "VP8", "H264" (Annex-B) or "opus"
    data: bytes
    rtp_timestamp: int
    clock_rate: int
    keyframe: bool
    arrival: float


class EncodedFrameSink(Protocol):
    """Receives every encoded frame the bridge forwards, plus media on/off changes."""

    def on_frame(self, frame: EncodedFrame) -> None:
        """Take one frame; must not block."""

    def on_media_state(
        self, participant_id: str, kind: MediaKind, enabled: bool, at: float
    ) -> None:
        """A participant turned their camera (video) or microphone (audio) off or on.

        ``at`` is on the same monotonic clock as ``EncodedFrame.arrival``.
        """
