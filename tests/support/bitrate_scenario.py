"""One call through the media bridge with the buyer's downlink constrained by a UDP shaper.

The seller (``a``) sends adaptive pre-encoded video (``AdaptiveReplayTrack``: it follows
the REMB the bridge sends it, as a browser's encoder does) and Opus; the buyer (``b``)
reaches the bridge only through a ``UdpShaperProcess``. After ``warmup_s`` the buyer's
downlink is limited to ``limit_bps`` for ``constrained_s``. Used by the Done-when test
of receiver-driven bitrate and by ``bench/bench_bitrate.py`` (adaptation on and off).

Figures, all about the constrained stretch:

* the seller's sent video bitrate per second (from what its track handed its sender)
  and the REMB values it was told;
* the buyer's video freezes: Chromium's definition (a gap between two *decodable*
  frames longer than max(3 x the mean frame interval, mean + 150 ms)), where a frame is
  decodable from a keyframe on until a frame is missing;
* the buyer's audio: frames missing (what a browser would conceal) and the longest gap.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field, replace

from signaling.media_bandwidth import BandwidthSettings, Notice
from signaling.media_bridge import BridgeSettings, BridgeStats, CallMediaBridge
from tests.support.encoded_media import EncodedClip, encoded_clip
from tests.support.media_peers import MediaClient, Progress, ReceivedFrames, server_media_port
from tests.support.udp_shaper import UdpShaperProcess

VIDEO_FRAME_TICKS = 3000  # 90 kHz at 30 fps
AUDIO_FRAME_TICKS = 960  # 20 ms at 48 kHz


def video_ladder() -> tuple[EncodedClip, ...]:
    """640x480 at about 950 kbps, 320x240 at about 180 kbps, 160x120 at about 80 kbps."""
    return (
        encoded_clip(),
        encoded_clip(320, 240, bitrate=170_000),
        encoded_clip(160, 120, bitrate=60_000),
    )


@dataclass
class Freezes:
    count: int = 0
    total_s: float = 0.0
    longest_s: float = 0.0


@dataclass
class ScenarioFigures:
    receiver_driven: bool
    limit_bps: int
    sent_kbps: list[float]
    """The seller's video bitrate in each second of the constrained stretch."""
    remb_kbps: list[float]
    """The lowest REMB the seller was told in each second (None-free: 0 when none)."""
    adapted_after_s: float | None
    """Seconds from the constraint until the seller's video first fit the limit."""
    freezes_after_adaptation: Freezes
    freezes_whole: Freezes
    """Over the whole constrained stretch, its start and end counting as frames."""
    video_frames_decodable: int
    audio_frames_expected: int
    audio_frames_missing: int
    audio_longest_gap_s: float
    notices: list[tuple[float, str, str]] = field(default_factory=list)
    """``(seconds from the constraint, receiver, notice)``."""
    shaper_drops: int = 0
    audio_gaps: list[tuple[float, float]] = field(default_factory=list)
    """``(seconds from the constraint, gap)`` of every audio gap over 250 ms."""
    final_stats: BridgeStats | None = None
    video_frames_after_resume: int = 0

    @property
    def audio_concealed_s(self) -> float:
        return self.audio_frames_missing * AUDIO_FRAME_TICKS / 48000


def freezes(arrivals: list[float]) -> Freezes:
    """Chromium's freeze definition over frame arrival times."""
    found = Freezes()
    if len(arrivals) < 2:
        return found
    intervals = [b - a for a, b in itertools.pairwise(arrivals)]
    total = 0.0
    for index, interval in enumerate(intervals):
        mean = (total / index) if index else 1 / 30
        if interval > max(3 * mean, mean + 0.150):
            found.count += 1
            found.total_s += interval
            found.longest_s = max(found.longest_s, interval)
        total += interval
    return found


def decodable_arrivals(received: ReceivedFrames, since: float) -> list[float]:
    out: list[float] = []
    decodable = False
    previous: int | None = None
    for frame, arrived in zip(received.frames, received.arrivals, strict=True):
        if frame.keyframe:
            decodable = True
        elif previous is not None and frame.timestamp - previous > VIDEO_FRAME_TICKS * 1.5:
            decodable = False  # a frame is missing: nothing decodes until a keyframe
        previous = frame.timestamp
        if decodable and arrived >= since:
            out.append(arrived)
    return out


def _per_second(
    samples: list[tuple[float, int]], start: float, seconds: int, *, lowest: bool
) -> list[float]:
    buckets: list[list[int]] = [[] for _ in range(seconds)]
    for at, value in samples:
        index = int(at - start)
        if 0 <= index < seconds:
            buckets[index].append(value)
    if lowest:
        return [min(b) / 1000 if b else 0.0 for b in buckets]
    return [sum(b) * 8 / 1000 for b in buckets]


async def run_scenario(
    *,
    receiver_driven: bool,
    limit_bps: int = 450_000,
    warmup_s: float = 5.0,
    constrained_s: int = 16,
    queue_ms: float = 250.0,
    unconstrained_after_s: float = 0.0,
    settings: BandwidthSettings | None = None,
) -> ScenarioFigures:
    """The figures are about the ``constrained_s`` stretch; ``unconstrained_after_s``
    more seconds follow with the limit lifted (notices keep being collected)."""
    bandwidth = settings or BandwidthSettings()
    bandwidth = replace(bandwidth, receiver_driven=receiver_driven)
    ladder = video_ladder()
    progress = Progress()
    notices: list[tuple[float, str, str]] = []
    constrained_at = [0.0]

    def on_notice(participant_id: str, notice: Notice) -> None:
        notices.append((time.monotonic() - constrained_at[0], participant_id, notice))

    bridge = CallMediaBridge(
        "call-bitrate",
        on_notice=on_notice,
        settings=BridgeSettings(bandwidth=bandwidth),
    )
    a = MediaClient(ladder[0], progress, video_ladder=ladder)
    b = MediaClient(ladder[0], progress)
    try:
        await a.accept_answer(await bridge.accept_offer("a", await a.create_offer()))
        answer = await bridge.accept_offer("b", await b.create_offer(without_candidates=True))
        server_port = server_media_port(answer)
        async with UdpShaperProcess(server_port) as shaper:
            await b.accept_answer_through(answer, shaper.port)
            await a.wait_connected()
            await b.wait_connected()
            await progress.wait_for(
                lambda: len(b.received["video"]) > 30, "video reaching the buyer", 20
            )
            await asyncio.sleep(warmup_s)
            constrained_at[0] = start = time.monotonic()
            await shaper.set("down", rate_bps=limit_bps, queue_ms=queue_ms)
            await asyncio.sleep(constrained_s)
            drops = (await shaper.stats())["down"].dropped_queue
            if unconstrained_after_s:
                await shaper.set("down", rate_bps=None)
                await asyncio.sleep(unconstrained_after_s)
        figures = _figures(a, b, start, constrained_s, receiver_driven, limit_bps, notices, drops)
        figures.final_stats = bridge.stats()
        resumed = [at for at, _, notice in notices if notice == "video_resumed"]
        if resumed:
            since = start + resumed[-1]
            figures.video_frames_after_resume = sum(
                1 for at in b.received["video"].arrivals if at >= since
            )
        return figures
    finally:
        await a.close()
        await b.close()
        await bridge.aclose()


def _figures(
    a: MediaClient,
    b: MediaClient,
    start: float,
    seconds: int,
    receiver_driven: bool,
    limit_bps: int,
    notices: list[tuple[float, str, str]],
    drops: int,
) -> ScenarioFigures:
    video = a.sources["video"]
    # The track's pts are its media clock: frame n left at the track's start + n periods.
    origin = video.started_at
    assert origin is not None
    sent = [(origin + pts / 90000, len(data)) for pts, data in video.sent]
    sent_kbps = _per_second(sent, start, seconds, lowest=False)
    remb_kbps = _per_second(a.estimates, start, seconds, lowest=True)
    # Video sent in a window of one second fits when it is under the limit less audio
    # (about 60 kbps with packet overhead).
    budget_kbps = (limit_bps - 60_000) / 1000
    adapted = next((i + 1.0 for i, kbps in enumerate(sent_kbps) if kbps <= budget_kbps), None)
    after = start + (adapted if adapted is not None else seconds)
    arrivals = decodable_arrivals(b.received["video"], after)
    window = [start, *decodable_arrivals(b.received["video"], start), start + seconds]
    audio = [
        (f.timestamp, at)
        for f, at in zip(b.received["audio"].frames, b.received["audio"].arrivals, strict=True)
        if at >= start
    ]
    expected = (audio[-1][0] - audio[0][0]) // AUDIO_FRAME_TICKS + 1 if audio else 0
    gaps = [y - x for (_, x), (_, y) in itertools.pairwise(audio)]
    audio_gaps = [
        (x - start, y - x) for (_, x), (_, y) in itertools.pairwise(audio) if y - x > 0.25
    ]
    return ScenarioFigures(
        receiver_driven=receiver_driven,
        limit_bps=limit_bps,
        sent_kbps=sent_kbps,
        remb_kbps=remb_kbps,
        adapted_after_s=adapted,
        freezes_after_adaptation=freezes(arrivals),
        freezes_whole=freezes(sorted(window)),
        video_frames_decodable=len(arrivals),
        audio_frames_expected=expected,
        audio_frames_missing=max(0, expected - len(audio)),
        audio_longest_gap_s=max(gaps, default=0.0),
        audio_gaps=audio_gaps,
        notices=notices,
        shaper_drops=drops,
    )
