"""``GET /metrics`` (Prometheus text) on ``INBOXCALL_METRICS_HOST:INBOXCALL_METRICS_PORT``.

A second aiohttp site with that one route, never on the public port: the public app
has no ``/metrics`` at all. Off unless ``INBOXCALL_METRICS_PORT`` is set (several nodes
may share a machine). The registry is this app's own, so every name on it starts with
``inboxcall_`` and two apps in one process (tests) do not share counters.

``metrics_ctx`` wires the collectors to their owners: a transition listener on the call
service (calls started/ended, and which calls carry media), a call-ended hook (a call's
final media counters), and the counters the recording service and the sockets keep.
Media that runs elsewhere (worker processes) joins through ``app[MEDIA_METRICS]``:
``add_source`` a ``MediaStatsSource`` and hand it each call's last snapshot through
``call_ended``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector
from prometheus_client.exposition import generate_latest

from recorder.call_recorder import CallRecorder, RecorderStats
from server.appkeys import (
    CALL_ENDED_HOOKS,
    CALLS,
    MEDIA_METRICS,
    RECORDINGS,
    SETTINGS,
    WS_COUNTERS,
    WS_PRESENCE,
)
from server.calls.live_call import LiveCall
from server.metrics.collectors import CallMetrics, RecordingMetrics, SocketMetrics
from server.metrics.loop_lag import LoopLagSampler
from server.metrics.media import INPROC_WORKER, InProcessMediaStats, MediaCollector
from signaling.call_state import CallTransition, PhaseChanged

METRICS_PATH = "/metrics"


def metrics_app(registry: CollectorRegistry) -> web.Application:
    async def metrics(_request: web.Request) -> web.Response:
        # Collecting reads in-memory counters only; it is cheap enough to run on the loop.
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get(METRICS_PATH, metrics)
    return app


def _recorder_stats(live: LiveCall) -> RecorderStats | None:
    return live.sink.stats() if isinstance(live.sink, CallRecorder) else None


async def metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """Register after the call signalling's context: it reads the call service."""
    settings = app[SETTINGS]
    if not settings.metrics_port:
        yield
        return
    calls = app[CALLS]
    presence = app[WS_PRESENCE]
    registry = CollectorRegistry(auto_describe=True)
    call_metrics = CallMetrics(live_calls=lambda: len(calls.live_call_ids))
    media = MediaCollector(workers=[INPROC_WORKER])
    inproc = InProcessMediaStats(media)
    media.add_source(inproc)
    registry.register(call_metrics)
    registry.register(media)
    if RECORDINGS in app:
        registry.register(RecordingMetrics(app[RECORDINGS].counters))
    registry.register(SocketMetrics(app[WS_COUNTERS], lambda: len(presence.connections())))
    ProcessCollector(namespace="inboxcall", registry=registry)
    lag = LoopLagSampler(registry)

    def on_transition(live: LiveCall, transition: CallTransition) -> None:
        call_metrics.on_transition(live, transition)
        if any(isinstance(c, PhaseChanged) and c.previous is None for c in transition.changes):
            inproc.track(live.call_id, live.bridge.stats, lambda: _recorder_stats(live))

    async def on_call_ended(call_id: str) -> None:
        # Runs once the call's bridge and recorder are closed: their counters are final.
        inproc.untrack(call_id)

    calls.transition_listeners.append(on_transition)
    hooks = app[CALL_ENDED_HOOKS]
    # First: the bridge and recorder are closed by now, and the recording service's hook
    # (finalising, uploading) may take a while; the call carries no media meanwhile.
    hooks.insert(0, on_call_ended)
    runner = web.AppRunner(metrics_app(registry), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.metrics_host, settings.metrics_port)
        await site.start()
        lag.start()
        app[MEDIA_METRICS] = media
        yield
    finally:
        await lag.aclose()
        await runner.cleanup()
        calls.transition_listeners.remove(on_transition)
        hooks.remove(on_call_ended)
