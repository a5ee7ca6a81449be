"""aiortc's video jitter buffer, with a bounded wait for a missing packet.

aiortc 1.16's ``JitterBuffer`` hands out a frame only once every packet from its
origin on has arrived. A video packet that is lost and never retransmitted (the
retransmission is lost too, or the sender's history no longer has it) blocks every
later frame until 512 packets have queued behind it: at the 150-200 kbps a weak link
carries that is 10-20 s of frozen picture, on the bridge's receive legs and on any
aiortc receiver. libwebrtc gives up on such a packet, drops the frames that cannot
decode and asks for a keyframe; this buffer does the same.

When the oldest incomplete frame has waited ``max_wait_s`` with later packets behind
the hole, the buffer gives up on it: it hands out the frame before the hole if that
one is complete (its last packet carries the RTP marker bit), drops the rest up to the
first packet that certainly starts a frame (the one after a marker), or, when none is
buffered yet, drops what is buffered and resynchronises on the next marker. It reports
the gap (``on_gap``) and sets aiortc's PLI flag so the sender is asked for a keyframe.
While it waits, it asks again for what is missing every ``renack_interval_s``
(``on_still_missing``, with the stream's SSRC and the sequence numbers of the holes):
aiortc's receiver sends a NACK only when a new packet goes missing, so a lost
retransmission was never asked for again.
Frames handed out after a gap may depend on lost ones: the owner waits for a keyframe
before using them (the bridge's ``awaiting_keyframe``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

VIDEO_CAPACITY = 512
"""aiortc's own capacity for video (``RTCRtpReceiver.__init__``)."""

DEFAULT_MAX_WAIT_S = 0.5
"""Long enough for a NACK and its retransmission on a 300 ms round trip; short enough
that the keyframe asked for instead arrives within about a second of the loss."""

DEFAULT_RENACK_INTERVAL_S = 0.15
"""Two or three more requests within the wait; a NACK is a few dozen bytes."""

MAX_RENACKED = 64
"""At most this many holes asked for again at once (the oldest: they block the head)."""


class BoundedWaitJitterBuffer(JitterBuffer):
    def __init__(
        self,
        *,
        capacity: int = VIDEO_CAPACITY,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        on_gap: Callable[[], None] | None = None,
        renack_interval_s: float = DEFAULT_RENACK_INTERVAL_S,
        on_still_missing: Callable[[int, list[int]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(capacity, is_video=True)
        self._max_wait_s = max_wait_s
        self._on_gap = on_gap
        self._renack_interval_s = renack_interval_s
        self._on_still_missing = on_still_missing
        self._asked_at = 0.0
        self._clock = clock
        self._newest: int | None = None
        self._blocked_since: float | None = None
        self._resynchronising = False
        self.gaps_skipped = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        if self._resynchronising:
            # Dropping the rest of a frame whose start was lost, up to its last packet.
            if packet.marker:
                self._resynchronising = False
            return False, None
        pli_flag, frame = super().add(packet)
        self._track_newest(packet.sequence_number)
        if frame is not None or not self._blocked():
            self._blocked_since = None
            return pli_flag, frame
        now = self._clock()
        if self._blocked_since is None:
            self._blocked_since = self._asked_at = now
            return pli_flag, None
        if now - self._blocked_since < self._max_wait_s:
            if self._on_still_missing is not None and (
                now - self._asked_at >= self._renack_interval_s
            ):
                self._asked_at = now
                self._on_still_missing(packet.ssrc, self._holes())
            return pli_flag, None
        self._blocked_since = None
        self.gaps_skipped += 1
        salvaged = self._skip_gap()
        if self._on_gap is not None:
            self._on_gap()
        if salvaged is not None:
            return True, salvaged
        if self._origin is None or self._head() is None:
            return True, None
        return True, self._remove_frame(packet.sequence_number)

    def _track_newest(self, sequence_number: int) -> None:
        assert self._origin is not None
        if self._newest is None or uint16_add(self._newest, -self._origin) >= self._capacity:
            # First packet, or aiortc's buffer restarted behind us (a sequence jump).
            self._newest = sequence_number
        elif 0 < uint16_add(sequence_number, -self._newest) < self._capacity:
            self._newest = sequence_number

    def _head(self, offset: int = 0) -> RtpPacket | None:
        assert self._origin is not None
        return self._packets[(self._origin + offset) % self._capacity]

    def _contiguous(self) -> int:
        """How many packets from the origin on have arrived without a hole."""
        count = 0
        while count < self._capacity and self._head(count) is not None:
            count += 1
        return count

    def _holes(self) -> list[int]:
        """Sequence numbers missing between the origin and the newest packet."""
        assert self._origin is not None and self._newest is not None
        span = uint16_add(self._newest, -self._origin) + 1
        holes = []
        for offset in range(min(span, self._capacity)):
            if self._head(offset) is None:
                holes.append(uint16_add(self._origin, offset))
                if len(holes) == MAX_RENACKED:
                    break
        return holes

    def _blocked(self) -> bool:
        """A hole at the head with a later packet behind it (not merely a frame waiting
        for the next one's first packet)."""
        if self._origin is None or self._newest is None:
            return False
        return uint16_add(self._newest, -self._origin) >= self._contiguous()

    def _skip_gap(self) -> JitterFrame | None:
        """Give up on the hole at the head; returns the frame before it if complete."""
        assert self._origin is not None and self._newest is not None
        run = self._contiguous()
        salvaged = None
        if run:
            packets = [self._head(i) for i in range(run)]
            last = packets[-1]
            if last is not None and last.marker:
                # aiortc emits a frame on the next frame's first packet: this one is
                # complete, only what follows it was lost.
                salvaged = JitterFrame(
                    data=b"".join(p._data for p in packets if p is not None),  # type: ignore[attr-defined]
                    timestamp=last.timestamp,
                )
        span = uint16_add(self._newest, -self._origin) + 1
        for start in range(run + 1, span):
            before, first = self._head(start - 1), self._head(start)
            if before is not None and first is not None and before.marker:
                self.remove(start)
                return salvaged
        newest = self._head(span - 1)
        self.remove(min(span, self._capacity))
        self._origin = None
        self._newest = None
        # Unless what came last ended a frame, the next packets finish one begun in the hole.
        self._resynchronising = not (newest is not None and newest.marker)
        return salvaged
