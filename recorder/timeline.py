"""Presentation times on the call clock, derived per stream from RTP timestamps.

Arrival times jitter by tens of milliseconds; RTP timestamps are the sender's own smooth
clock. Each stream therefore takes its times from RTP, anchored at its first frame's
arrival offset from the call's recording start, so both participants' files share one
clock. When the two clocks part by more than ``reanchor_after`` (the sender paused its
track and resumed with timestamps that do not reflect the pause, or restarted them), the
stream re-anchors to wall time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_REANCHOR_AFTER_S = 1.0


@dataclass(slots=True)
class StreamTimeline:
    clock_rate: int
    reanchor_after: float = DEFAULT_REANCHOR_AFTER_S
    start_offset: float | None = None
    reanchors: int = 0
    _anchor_rtp: int = field(default=0, repr=False)
    _anchor_offset: float = field(default=0.0, repr=False)

    def media_time(self, rtp_timestamp: int, wall_offset: float) -> float:
        """Seconds on the call clock for a frame that arrived ``wall_offset`` s into the call."""
        if self.start_offset is None:
            self.start_offset = wall_offset
            self._anchor(rtp_timestamp, wall_offset)
            return wall_offset
        media = self._anchor_offset + (rtp_timestamp - self._anchor_rtp) / self.clock_rate
        if abs(media - wall_offset) > self.reanchor_after:
            self.reanchors += 1
            self._anchor(rtp_timestamp, wall_offset)
            return wall_offset
        return media

    def _anchor(self, rtp_timestamp: int, wall_offset: float) -> None:
        self._anchor_rtp = rtp_timestamp
        self._anchor_offset = wall_offset
