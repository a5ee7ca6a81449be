"""Media metrics from per-call counter snapshots, wherever the media runs.

The bridge and the recorder already count everything per call (``BridgeStats``,
``RecorderStats``); nothing is added on the media path. A ``MediaStatsSource`` answers a
``CallMediaSnapshot`` (plain counters, picklable, JSON-able) per call it carries media
for; ``MediaCollector`` reads every source at scrape time and labels by ``worker``.

``LiveCallMediaStats`` is the source for the node's calls: it asks each call's
``CallMedia`` for its stats (over IPC when the call runs on a media worker, labelled by
the worker's index; ``inproc`` when media runs in the serving process) before every
scrape, and hands each call's last counters to ``MediaCollector.call_ended``.

Counters must never go down while the process lives, though calls come and go: what
ended calls counted is kept per worker (``call_ended``), and a call that vanishes from
its source without an ended snapshot (its worker died) is kept at its last-seen values.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from recorder.call_recorder import ParticipantRecordingStats, RecorderStats
from server.media.call_media import CallMedia
from server.owned_tasks import OwnedTasks
from signaling.media_bridge import BridgeStats

log = logging.getLogger(__name__)

INPROC_WORKER: Final = "inproc"
KINDS: Final = ("audio", "video")
BRIDGE_DROP_REASONS: Final = ("queue_full", "awaiting_keyframe")
# Frames the recording lost. Camera-off frames are left out: the recording skips them on
# purpose (it inserts black frames instead).
RECORDER_DROP_REASONS: Final = (
    "queue_full",
    "awaiting_keyframe",
    "unsupported_codec",
    "after_error",
    "after_close",
)
# How many ended calls are remembered, so that a source still listing a call it already
# reported ended (a worker's stale cache) cannot count it twice.
ENDED_CALLS_REMEMBERED: Final = 4096


@dataclass(frozen=True, slots=True)
class CallMediaSnapshot:
    """One call's media counters at one moment, as one worker saw them."""

    worker: str
    call_id: str
    frames_forwarded: dict[str, int] = field(default_factory=dict)
    """kind -> frames the bridge sent on to a participant."""
    frames_dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    """kind -> reason -> frames the bridge did not forward."""
    keyframe_requests: int = 0
    """Keyframe requests the bridge sent to browsers."""
    recorder_queue_depth: int = 0
    recorder_frames_dropped: dict[str, int] = field(default_factory=dict)
    """reason -> frames the recording lost."""


class MediaStatsSource(Protocol):
    def snapshots(self) -> Iterable[CallMediaSnapshot]:
        """The current counters of every call whose media this source carries.

        Called on the event loop at every scrape: answer from memory, never block.
        """


def _recorder_drops(participants: Iterable[ParticipantRecordingStats]) -> dict[str, int]:
    drops: Counter[str] = Counter()
    for p in participants:
        drops["queue_full"] += p.dropped_queue_full
        drops["awaiting_keyframe"] += p.video_dropped_awaiting_keyframe
        drops["unsupported_codec"] += p.dropped_unsupported_codec
        drops["after_error"] += p.dropped_after_error
        drops["after_close"] += p.dropped_after_close
    return dict(drops)


def snapshot_of(
    bridge: BridgeStats, recorder: RecorderStats | None, *, worker: str
) -> CallMediaSnapshot:
    """The snapshot of one call from its bridge's and recorder's own stats."""
    forwarded: Counter[str] = Counter()
    dropped: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
    keyframe_requests = 0
    for s in bridge.streams:
        forwarded[s.kind] += s.frames_out
        dropped[s.kind]["queue_full"] += s.frames_out_dropped
        dropped[s.kind]["awaiting_keyframe"] += (
            s.frames_in_awaiting_keyframe + s.frames_out_awaiting_keyframe
        )
        keyframe_requests += s.keyframe_requests_sent
    return CallMediaSnapshot(
        worker=worker,
        call_id=bridge.call_id,
        frames_forwarded=dict(forwarded),
        frames_dropped={kind: dict(reasons) for kind, reasons in dropped.items()},
        keyframe_requests=keyframe_requests,
        recorder_queue_depth=recorder.queue_depth if recorder is not None else 0,
        recorder_frames_dropped=(
            _recorder_drops(recorder.participants.values()) if recorder is not None else {}
        ),
    )


@dataclass(slots=True)
class _Totals:
    """Summed counters of one worker."""

    forwarded: Counter[str] = field(default_factory=Counter)
    dropped: Counter[tuple[str, str]] = field(default_factory=Counter)
    keyframe_requests: int = 0
    recorder_dropped: Counter[str] = field(default_factory=Counter)

    def add(self, snapshot: CallMediaSnapshot) -> None:
        self.forwarded.update(snapshot.frames_forwarded)
        for kind, reasons in snapshot.frames_dropped.items():
            for reason, count in reasons.items():
                self.dropped[kind, reason] += count
        self.keyframe_requests += snapshot.keyframe_requests
        self.recorder_dropped.update(snapshot.recorder_frames_dropped)

    def copy(self) -> _Totals:
        return _Totals(
            Counter(self.forwarded),
            Counter(self.dropped),
            self.keyframe_requests,
            Counter(self.recorder_dropped),
        )


_Key = tuple[str, str]  # (worker, call_id)


class MediaCollector(Collector):
    """Reads every source at scrape time; keeps what ended calls counted. Loop-only."""

    def __init__(self, workers: Iterable[str] = ()) -> None:
        self._sources: list[MediaStatsSource] = []
        self._ended: dict[str, _Totals] = {worker: _Totals() for worker in workers}
        self._last_seen: dict[_Key, CallMediaSnapshot] = {}
        self._ended_keys: OrderedDict[_Key, None] = OrderedDict()

    def add_source(self, source: MediaStatsSource) -> None:
        self._sources.append(source)

    def remove_source(self, source: MediaStatsSource) -> None:
        self._sources.remove(source)

    def call_ended(self, snapshot: CallMediaSnapshot) -> None:
        """Keep a call's final counters; the source no longer lists it."""
        key = (snapshot.worker, snapshot.call_id)
        if key in self._ended_keys:
            return
        self._ended_keys[key] = None
        if len(self._ended_keys) > ENDED_CALLS_REMEMBERED:
            self._ended_keys.popitem(last=False)
        self._last_seen.pop(key, None)
        self._ended.setdefault(snapshot.worker, _Totals()).add(snapshot)

    def _refresh(self) -> dict[_Key, CallMediaSnapshot]:
        live: dict[_Key, CallMediaSnapshot] = {}
        for source in self._sources:
            for snapshot in source.snapshots():
                key = (snapshot.worker, snapshot.call_id)
                if key not in self._ended_keys:
                    live[key] = snapshot
        for key, last in self._last_seen.items():
            if key not in live:
                # Gone without an ended snapshot (its worker died): keep what it counted.
                self._ended.setdefault(last.worker, _Totals()).add(last)
                self._ended_keys[key] = None
        while len(self._ended_keys) > ENDED_CALLS_REMEMBERED:
            self._ended_keys.popitem(last=False)
        self._last_seen = live
        return live

    def collect(self) -> Iterator[Metric]:
        live = self._refresh()
        totals = {worker: t.copy() for worker, t in self._ended.items()}
        calls: Counter[str] = Counter()
        queue_depth: Counter[str] = Counter()
        for (worker, _call_id), snapshot in live.items():
            totals.setdefault(worker, _Totals()).add(snapshot)
            calls[worker] += 1
            queue_depth[worker] += snapshot.recorder_queue_depth

        media_calls = GaugeMetricFamily(
            "inboxcall_media_calls", "Calls whose media this worker carries.", labels=["worker"]
        )
        forwarded = CounterMetricFamily(
            "inboxcall_media_frames_forwarded",
            "Encoded frames the bridge sent on to a participant.",
            labels=["worker", "kind"],
        )
        dropped = CounterMetricFamily(
            "inboxcall_media_frames_dropped",
            "Encoded frames the bridge did not forward (queue full, or waiting for a keyframe).",
            labels=["worker", "kind", "reason"],
        )
        keyframes = CounterMetricFamily(
            "inboxcall_media_keyframe_requests",
            "Keyframe requests (PLI) the bridge sent to browsers.",
            labels=["worker"],
        )
        depth = GaugeMetricFamily(
            "inboxcall_recorder_queue_depth",
            "Frames and events waiting for the recorder's writer thread.",
            labels=["worker"],
        )
        recorder_dropped = CounterMetricFamily(
            "inboxcall_recorder_frames_dropped",
            "Frames the recordings lost.",
            labels=["worker", "reason"],
        )
        for worker in sorted(totals):
            t = totals[worker]
            media_calls.add_metric([worker], calls[worker])
            depth.add_metric([worker], queue_depth[worker])
            keyframes.add_metric([worker], t.keyframe_requests)
            for kind in KINDS:
                forwarded.add_metric([worker, kind], t.forwarded[kind])
                for reason in BRIDGE_DROP_REASONS:
                    dropped.add_metric([worker, kind, reason], t.dropped[kind, reason])
            for reason in RECORDER_DROP_REASONS:
                recorder_dropped.add_metric([worker, reason], t.recorder_dropped[reason])
        yield from (media_calls, forwarded, dropped, keyframes, depth, recorder_dropped)


# A call's media answers within this or its snapshot stays as last read (kept, not lost).
STATS_TIMEOUT_SECONDS: Final = 2.0


class LiveCallMediaStats:
    """The source for the calls of this node, wherever their media runs.

    ``refresh`` (before every scrape) asks each live call's media for its counters: in
    this process that is a read of the bridge and recorder, on a media worker one IPC
    round-trip per call. ``call_ending`` takes a call's last counters while its media is
    still open (the call just ended, its teardown has not closed it yet) and hands them to
    the collector. Both run in tasks this source owns (``aclose``).
    """

    def __init__(self, collector: MediaCollector, worker_of: Callable[[CallMedia], str]) -> None:
        self._collector = collector
        self._worker_of = worker_of
        self._media: dict[str, CallMedia] = {}
        self._latest: dict[str, CallMediaSnapshot] = {}
        self._endings = OwnedTasks("media metrics: final reads")

    def track(self, media: CallMedia) -> None:
        self._media[media.call_id] = media

    def call_ending(self, call_id: str) -> None:
        media = self._media.pop(call_id, None)
        if media is None:
            return
        self._endings.spawn(self._final(media), name=f"metrics-final-stats-{call_id}")

    async def _read(self, media: CallMedia) -> CallMediaSnapshot | None:
        try:
            async with asyncio.timeout(STATS_TIMEOUT_SECONDS):
                stats = await media.stats()
        except Exception as exc:
            log.info("call=%s media stats unavailable (%s)", media.call_id, type(exc).__name__)
            return None
        return snapshot_of(stats.bridge, stats.recorder, worker=self._worker_of(media))

    async def _final(self, media: CallMedia) -> None:
        final = await self._read(media)
        last = self._latest.pop(media.call_id, None)
        ended = final or last
        if ended is not None:
            self._collector.call_ended(ended)

    async def refresh(self) -> None:
        media = list(self._media.values())
        snapshots = await asyncio.gather(*(self._read(m) for m in media))
        for m, snapshot in zip(media, snapshots, strict=True):
            # A call that ended meanwhile is the final read's to report.
            if snapshot is not None and m.call_id in self._media:
                self._latest[m.call_id] = snapshot

    def snapshots(self) -> list[CallMediaSnapshot]:
        return list(self._latest.values())

    async def aclose(self) -> None:
        """Wait for the final reads under way (each bounded by its timeout)."""
        await self._endings.wait()
