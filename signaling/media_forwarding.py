"""The send side of the bridge: a bounded track of encoded packets, and keyframe requests.

A ``ForwardingTrack`` is what a participant's sender reads: the other participant's
encoded frames as ``av.Packet``s, which aiortc packetizes without encoding. Its queue is
bounded (aiortc's are not): audio drops the oldest frame on overflow; video drops
everything queued and waits for the next keyframe, asking for one, because a video
decoder cannot continue after a gap.

A ``KeyframeRequester`` turns any number of "this stream needs a keyframe" wishes into
at most one RTCP PLI per interval per stream, plus one trailing request at the end of
the interval when wishes were coalesced, cancelled if a keyframe arrives meanwhile.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from signaling.media_sink import MediaKind


@dataclass(slots=True)
class StreamCounters:
    """Mutable per participant+kind counters; ``BridgeStats`` holds frozen copies."""

    frames_in: int = 0
    keyframes_in: int = 0
    frames_muted: int = 0
    frames_in_awaiting_keyframe: int = 0
    keyframe_requests_sent: int = 0
    frames_out: int = 0
    frames_out_dropped: int = 0
    frames_out_awaiting_keyframe: int = 0
    keyframe_requests_received: int = 0
    frames_over_budget: int = 0
    frames_out_paused: int = 0
    packet_gaps_skipped: int = 0


class ForwardingTrack(MediaStreamTrack):
    """Encoded frames for one participant's sender, bounded, gated on keyframes.

    ``on_attach`` runs when the sender first pulls (the consumer is connected and
    wants media): frames pushed before that are ignored, so nothing queues up while a
    leg is still connecting. ``on_keyframe_needed`` runs whenever video waits for a
    keyframe; callers rate-limit it.
    """

    def __init__(
        self,
        kind: MediaKind,
        *,
        capacity: int,
        counters: StreamCounters,
        on_attach: Callable[[], None],
        on_keyframe_needed: Callable[[], None],
    ) -> None:
        super().__init__()
        self.kind = kind
        self._capacity = capacity
        self._counters = counters
        self._on_attach = on_attach
        self._on_keyframe_needed = on_keyframe_needed
        self._queue: deque[av.Packet[Any]] = deque()
        self._wakeup = asyncio.Event()
        self._attached = False
        self._awaiting_keyframe = kind == "video"
        self._time_bases: dict[int, Fraction] = {}

    @property
    def attached(self) -> bool:
        return self._attached

    def hold_until_keyframe(self) -> None:
        """Forward nothing more until a keyframe (video only; audio needs no keyframe)."""
        if self.kind == "video":
            self._awaiting_keyframe = True

    def push(self, data: bytes, pts: int, clock_rate: int, keyframe: bool) -> None:
        """Queue one frame for the sender. Called on the event loop; never blocks."""
        if not self._attached or self.readyState != "live":
            return
        if self._awaiting_keyframe:
            if not keyframe:
                self._counters.frames_out_awaiting_keyframe += 1
                self._on_keyframe_needed()
                return
            self._awaiting_keyframe = False
        if len(self._queue) >= self._capacity:
            if self.kind == "audio":
                self._queue.popleft()
                self._counters.frames_out_dropped += 1
            elif keyframe:
                # A keyframe makes everything before it unnecessary.
                self._counters.frames_out_dropped += len(self._queue)
                self._queue.clear()
            else:
                self._counters.frames_out_dropped += len(self._queue) + 1
                self._queue.clear()
                self._awaiting_keyframe = True
                self._on_keyframe_needed()
                return
        packet = av.Packet(data)
        packet.pts = pts
        time_base = self._time_bases.get(clock_rate)
        if time_base is None:
            time_base = self._time_bases[clock_rate] = Fraction(1, clock_rate)
        packet.time_base = time_base
        self._queue.append(packet)
        self._wakeup.set()

    async def recv(self) -> av.Packet[Any]:
        if not self._attached:
            self._attached = True
            self._on_attach()
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._wakeup.clear()
            await self._wakeup.wait()
        self._counters.frames_out += 1
        return self._queue.popleft()

    def stop(self) -> None:
        super().stop()
        self._queue.clear()
        # Wake a pending recv() so it sees the track ended.
        self._wakeup.set()


class KeyframeRequester:
    """At most one keyframe request per ``min_interval`` for one video stream.

    ``send`` performs the request and returns False when it could not (no connected
    leg or no known SSRC yet); the wish is then dropped, and the next non-keyframe a
    waiting consumer sees asks again.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        min_interval: float,
        send: Callable[[], bool],
    ) -> None:
        self._loop = loop
        self._min_interval = min_interval
        self._send = send
        self._last_sent = -math.inf
        self._trailing: asyncio.TimerHandle | None = None

    def request(self) -> None:
        now = self._loop.time()
        wait = self._last_sent + self._min_interval - now
        if wait <= 0:
            self._fire()
        elif self._trailing is None:
            self._trailing = self._loop.call_later(wait, self._on_trailing)

    def keyframe_arrived(self) -> None:
        """A keyframe satisfies every wish made before it: drop the trailing request."""
        if self._trailing is not None:
            self._trailing.cancel()
            self._trailing = None

    def close(self) -> None:
        self.keyframe_arrived()

    def _on_trailing(self) -> None:
        self._trailing = None
        self._fire()

    def _fire(self) -> None:
        if self._send():
            self._last_sent = self._loop.time()
