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
        failed.add_metric(["finalise"], c.finalise_failed)
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
