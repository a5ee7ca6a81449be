"""Collectors for what the control process counts: calls, recordings, call sockets.

Each reads counters its owner already keeps, at scrape time; the only counting added here
is per call transition (``CallMetrics.on_transition``), never per frame or per message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from server.calls.live_call import LiveCall
from server.media.worker_pool import MediaWorkerPool
from server.recording_service import RecordingCounters
from server.ws.socket_counters import SocketCounters
from signaling.call_state import CallTransition, EndReason, PhaseChanged


class CallMetrics(Collector):
    """Calls started and ended (by reason), told by the call service's transitions.

    The state machine emits a phase change once, so each call counts once as started and
    once as ended. Calls a dead process left live (ended at the next start-up from the
    database) are no transitions and are not counted: their process took its counts along.
    """

    def __init__(self, live_calls: Callable[[], int]) -> None:
        self._live_calls = live_calls
        self.started = 0
        self.ended: Counter[str] = Counter()

    def on_transition(self, live: LiveCall, transition: CallTransition) -> None:
        for change in transition.changes:
            if not isinstance(change, PhaseChanged):
                continue
            if change.previous is None:
                self.started += 1
            if change.end is not None:
                self.ended[change.end.reason.value] += 1

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "inboxcall_calls_live",
            "Calls ringing, connecting or active.",
            value=self._live_calls(),
        )
        yield CounterMetricFamily(
            "inboxcall_calls_started", "Calls started (they began to ring).", value=self.started
        )
        ended = CounterMetricFamily(
            "inboxcall_calls_ended", "Calls ended, by end reason.", labels=["reason"]
        )
        for reason in EndReason:
            ended.add_metric([reason.value], self.ended[reason.value])
        yield ended


class RecordingMetrics(Collector):
    def __init__(self, counters: RecordingCounters) -> None:
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        c = self._counters
        yield CounterMetricFamily(
            "inboxcall_recordings_stored",
            "Recordings (one per participant) stored and listed for review.",
            value=c.stored,
        )
        failed = CounterMetricFamily(
            "inboxcall_recordings_failed",
            "Recording failures, by stage; what failed stays in staging for the next start-up.",
            labels=["stage"],
        )
        failed.add_metric(["store"], c.store_failed)
        failed.add_metric(["recover"], c.recovery_failed)
        yield failed


class SocketMetrics(Collector):
    def __init__(self, counters: SocketCounters, open_sockets: Callable[[], int]) -> None:
        self._counters = counters
        self._open_sockets = open_sockets

    def collect(self) -> Iterator[Metric]:
        c = self._counters
        yield GaugeMetricFamily(
            "inboxcall_ws_connections", "Open call WebSockets.", value=self._open_sockets()
        )
        yield CounterMetricFamily(
            "inboxcall_ws_connections_opened", "Call WebSockets opened.", value=c.opened
        )
        yield CounterMetricFamily(
            "inboxcall_ws_connections_refused",
            "Call WebSockets refused: the user already had the most allowed.",
            value=c.refused_too_many,
        )
        yield CounterMetricFamily(
            "inboxcall_ws_slow_consumer_closes",
            "Call WebSockets closed (4002) because their client did not read fast enough.",
            value=c.slow_consumer_closes,
        )
        yield CounterMetricFamily(
            "inboxcall_ws_rate_limited_messages",
            "Client messages dropped for exceeding the rate limit.",
            value=c.rate_limited_messages,
        )
        yield CounterMetricFamily(
            "inboxcall_ws_rate_limit_closes",
            "Call WebSockets closed for flooding past the rate limit.",
            value=c.rate_limit_closes,
        )


class MediaWorkerMetrics(Collector):
    """The media workers' own reports: alive, calls placed, CPU, loop lag, UDP drops.

    Read from the pool's latest ``load`` event of each worker (sent every few seconds);
    a replaced worker starts its CPU and drop counters from zero, which ``rate()`` reads
    as a counter reset.
    """

    def __init__(self, pool: MediaWorkerPool) -> None:
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "inboxcall_media_worker_up", "1 while the media worker runs.", labels=["worker"]
        )
        placed = GaugeMetricFamily(
            "inboxcall_media_worker_calls", "Calls placed on the media worker.", labels=["worker"]
        )
        cpu = CounterMetricFamily(
            "inboxcall_media_worker_cpu_seconds",
            "CPU time of the media worker process (as of its last load report).",
            labels=["worker"],
        )
        lag = GaugeMetricFamily(
            "inboxcall_media_worker_loop_lag_seconds",
            "The media worker's event-loop lag over its recent samples.",
            labels=["worker", "quantile"],
        )
        drops = CounterMetricFamily(
            "inboxcall_media_worker_datagrams_dropped",
            "UDP datagrams the media worker dropped because its receive queue was full.",
            labels=["worker"],
        )
        for index, worker in enumerate(self._pool.workers):
            label = str(index)
            running = worker is not None and worker.alive and worker.ready
            up.add_metric([label], 1 if running else 0)
            placed.add_metric([label], len(worker.calls) if worker is not None else 0)
            if worker is None or not worker.alive:
                continue
            load = worker.load
            cpu.add_metric([label], load.cpu_seconds)
            drops.add_metric([label], load.datagrams_dropped)
            for name, quantile in (("p50", "0.5"), ("p99", "0.99"), ("max", "1")):
                if name in load.loop_lag:
                    lag.add_metric([label, quantile], load.loop_lag[name])
        yield from (up, placed, cpu, lag, drops)
