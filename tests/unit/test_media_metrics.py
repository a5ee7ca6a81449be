"""Media counters stay monotonic while calls come and go, per worker.

The source here stands in for media worker processes (outside this process), which is
what ``MediaStatsSource`` is for; the collector under test is the real one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from server.metrics.media import CallMediaSnapshot, MediaCollector


class WorkerReports:
    def __init__(self) -> None:
        self.live: dict[tuple[str, str], CallMediaSnapshot] = {}

    def snapshots(self) -> list[CallMediaSnapshot]:
        return list(self.live.values())

    def report(self, snapshot: CallMediaSnapshot) -> None:
        self.live[snapshot.worker, snapshot.call_id] = snapshot


def snap(worker: str, call_id: str, video: int, *, depth: int = 0) -> CallMediaSnapshot:
    return CallMediaSnapshot(
        worker=worker,
        call_id=call_id,
        frames_forwarded={"video": video, "audio": 2 * video},
        frames_dropped={"video": {"queue_full": 1}},
        keyframe_requests=1,
        recorder_queue_depth=depth,
        recorder_frames_dropped={"queue_full": 1},
    )


def scrape(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def forwarded(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], worker: str) -> float:
    key = frozenset({("worker", worker), ("kind", "video")})
    return samples["inboxcall_media_frames_forwarded_total", key]


def setup() -> tuple[CollectorRegistry, MediaCollector, WorkerReports]:
    registry = CollectorRegistry()
    collector = MediaCollector(workers=["0"])
    reports = WorkerReports()
    collector.add_source(reports)
    registry.register(collector)
    return registry, collector, reports


def test_known_workers_show_zeroes_before_any_call() -> None:
    registry, _collector, _reports = setup()
    samples = scrape(registry)
    assert forwarded(samples, "0") == 0
    assert samples["inboxcall_media_calls", frozenset({("worker", "0")})] == 0


def test_live_calls_sum_per_worker_and_ended_calls_keep_their_counts() -> None:
    registry, collector, reports = setup()
    reports.report(snap("0", "a", 10, depth=3))
    reports.report(snap("0", "b", 5, depth=4))
    reports.report(snap("1", "c", 7))
    samples = scrape(registry)
    assert forwarded(samples, "0") == 15
    assert forwarded(samples, "1") == 7
    assert samples["inboxcall_recorder_queue_depth", frozenset({("worker", "0")})] == 7
    assert samples["inboxcall_media_calls", frozenset({("worker", "0")})] == 2

    final = snap("0", "a", 12)
    del reports.live["0", "a"]
    collector.call_ended(final)
    samples = scrape(registry)
    assert forwarded(samples, "0") == 17  # 12 (ended) + 5 (live)
    assert samples["inboxcall_media_calls", frozenset({("worker", "0")})] == 1
    assert samples["inboxcall_recorder_queue_depth", frozenset({("worker", "0")})] == 4


def test_an_ended_call_still_listed_by_a_stale_source_counts_once() -> None:
    registry, collector, reports = setup()
    reports.report(snap("0", "a", 10))
    scrape(registry)
    collector.call_ended(snap("0", "a", 12))
    collector.call_ended(snap("0", "a", 12))  # told twice
    samples = scrape(registry)  # the source still lists "a"
    assert forwarded(samples, "0") == 12
    assert samples["inboxcall_media_calls", frozenset({("worker", "0")})] == 0


def test_a_call_whose_worker_died_keeps_its_last_seen_counts() -> None:
    registry, _collector, reports = setup()
    reports.report(snap("1", "c", 9))
    assert forwarded(scrape(registry), "1") == 9
    reports.live.clear()  # worker 1 died: no ended snapshot ever comes
    samples = scrape(registry)
    assert forwarded(samples, "1") == 9
    assert samples["inboxcall_media_calls", frozenset({("worker", "1")})] == 0
    reports.report(snap("1", "c", 9))  # a late duplicate report is not counted again
    assert forwarded(scrape(registry), "1") == 9
