"""What a Prometheus scrape costs the event loop, by number of live calls.

Collectors read the bridge's and recorder's own counters at scrape time (nothing is
counted per frame), so a scrape's cost grows with the calls carried. This prints the
event-loop time of one ``/metrics`` body for 1..N live calls, from real ``BridgeStats`` and
``RecorderStats`` shapes (two participants, audio and video each).
"""

from __future__ import annotations

import argparse
import time

from prometheus_client import CollectorRegistry, generate_latest

from recorder.call_recorder import ParticipantRecordingStats, RecorderStats
from server.metrics.media import INPROC_WORKER, InProcessMediaStats, MediaCollector
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


def scrape_ms(live_calls: int, rounds: int) -> float:
    registry = CollectorRegistry()
    collector = MediaCollector(workers=[INPROC_WORKER])
    source = InProcessMediaStats(collector)
    collector.add_source(source)
    registry.register(collector)
    for i in range(live_calls):
        call_id = f"call-{i}"
        source.track(
            call_id,
            lambda call_id=call_id: bridge_stats(call_id),
            lambda call_id=call_id: recorder_stats(call_id),
        )
    generate_latest(registry)
    started = time.perf_counter()
    for _ in range(rounds):
        generate_latest(registry)
    return (time.perf_counter() - started) / rounds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    print("live calls   ms of event loop per scrape   us per call")
    for calls in (1, 10, 50, 200):
        ms = scrape_ms(calls, args.rounds)
        print(f"{calls:>10}   {ms:>27.3f}   {ms * 1000 / calls:>11.1f}")


if __name__ == "__main__":
    main()
