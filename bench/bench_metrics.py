"""What a Prometheus scrape costs the serving process's event loop, by live calls.

Collectors read the bridge's and recorder's own counters at scrape time (nothing is
counted per frame), so a scrape's cost grows with the calls carried. This prints the
event-loop time of one ``/metrics`` (refresh of every call's stats, then the body) for
1..N calls whose media answers at once, from real ``BridgeStats`` and ``RecorderStats``
(two participants, audio and video each). Calls on media workers add one IPC
round-trip each, awaited concurrently, on top.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from prometheus_client import CollectorRegistry, generate_latest

from recorder.call_recorder import ParticipantRecordingStats, RecorderStats
from server.media.call_media import CallMediaStats
from server.metrics.media import INPROC_WORKER, LiveCallMediaStats, MediaCollector
from signaling.media_bridge import BridgeStats, StreamStats


def bridge_stats(call_id: str) -> BridgeStats:
    streams = tuple(
        StreamStats(p, kind, 900, 30, 0, 0, 3, 880, 2, 1, 1)
        for p in ("seller", "buyer")
        for kind in ("audio", "video")
    )
    return BridgeStats(call_id, "VP8", streams, 1, 1800, 0, 2)


def recorder_stats(call_id: str) -> RecorderStats:
    participant = ParticipantRecordingStats(video_frames_received=900, dropped_queue_full=1)
    return RecorderStats(call_id, 3, 40, {"seller": participant, "buyer": participant})


class AnsweringMedia:
    """A call's media that answers its stats at once (the in-process case)."""

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id

    async def stats(self) -> CallMediaStats:
        return CallMediaStats(bridge_stats(self.call_id), recorder_stats(self.call_id))


async def scrape_ms(live_calls: int, rounds: int) -> float:
    registry = CollectorRegistry()
    collector = MediaCollector(workers=[INPROC_WORKER])
    source = LiveCallMediaStats(collector, lambda _media: INPROC_WORKER)
    collector.add_source(source)
    registry.register(collector)
    for i in range(live_calls):
        # Only call_id and stats() of the CallMedia protocol are used here.
        source.track(AnsweringMedia(f"call-{i}"))  # type: ignore[arg-type]
    await source.refresh()
    generate_latest(registry)
    started = time.perf_counter()
    for _ in range(rounds):
        await source.refresh()
        generate_latest(registry)
    return (time.perf_counter() - started) / rounds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    print("live calls   ms of event loop per scrape   us per call")
    for calls in (1, 10, 50, 200):
        ms = asyncio.run(scrape_ms(calls, args.rounds))
        print(f"{calls:>10}   {ms:>27.3f}   {ms * 1000 / calls:>11.1f}")


if __name__ == "__main__":
    main()
