"""``GET /metrics`` (Prometheus text) on ``INBOXCALL_METRICS_HOST:INBOXCALL_METRICS_PORT``.

A second aiohttp site with that one route, never on the public port: the public app
has no ``/metrics`` at all. Off unless ``INBOXCALL_METRICS_PORT`` is set (several nodes
may share a machine). The registry is this app's own, so every name on it starts with
``inboxcall_`` and two apps in one process (tests) do not share counters.

``metrics_ctx`` wires the collectors to their owners: a transition listener on the call
service (calls started and ended; which calls carry media, and their last counters when
they end), the call media's own stats (read before each scrape, per media worker), the
media workers' load reports, and the counters the recording service and sockets keep.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector
from prometheus_client.exposition import generate_latest

from server.appkeys import (
    CALLS,
    MEDIA_HOST,
    MEDIA_METRICS,
    RECORDINGS,
    SETTINGS,
    WS_COUNTERS,
    WS_PRESENCE,
)
from server.calls.live_call import LiveCall
from server.media.call_media import CallMedia
from server.media.worker_pool import MediaWorkerPool, RemoteCallMedia
from server.metrics.collectors import (
    CallMetrics,
    MediaWorkerMetrics,
    RecordingMetrics,
    SocketMetrics,
)
from server.metrics.loop_lag import LoopLagSampler
from server.metrics.media import INPROC_WORKER, LiveCallMediaStats, MediaCollector
from signaling.call_state import CallTransition, PhaseChanged

METRICS_PATH = "/metrics"


def metrics_app(
    registry: CollectorRegistry, before_scrape: Callable[[], Awaitable[None]]
) -> web.Application:
    async def metrics(_request: web.Request) -> web.Response:
        await before_scrape()
        # Collecting reads in-memory counters only; it is cheap enough to run on the loop
        # (bench/bench_metrics.py).
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get(METRICS_PATH, metrics)
    return app


def worker_of(media: CallMedia) -> str:
    return str(media.worker.index) if isinstance(media, RemoteCallMedia) else INPROC_WORKER


async def metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """Register after the call signalling's context: it reads the call service."""
    settings = app[SETTINGS]
    if not settings.metrics_port:
        yield
        return
    calls = app[CALLS]
    presence = app[WS_PRESENCE]
    host = app[MEDIA_HOST]
    pool = host if isinstance(host, MediaWorkerPool) else None
    workers = [str(i) for i in range(len(pool.workers))] if pool else [INPROC_WORKER]
    registry = CollectorRegistry(auto_describe=True)
    call_metrics = CallMetrics(live_calls=lambda: len(calls.live_call_ids))
    media = MediaCollector(workers=workers)
    call_media = LiveCallMediaStats(media, worker_of)
    media.add_source(call_media)
    registry.register(call_metrics)
    registry.register(media)
    if pool is not None:
        registry.register(MediaWorkerMetrics(pool))
    registry.register(RecordingMetrics(app[RECORDINGS].counters))
    registry.register(SocketMetrics(app[WS_COUNTERS], lambda: len(presence.connections())))
    ProcessCollector(namespace="inboxcall", registry=registry)
    lag = LoopLagSampler(registry)

    def on_transition(live: LiveCall, transition: CallTransition) -> None:
        call_metrics.on_transition(live, transition)
        for change in transition.changes:
            if not isinstance(change, PhaseChanged):
                continue
            if change.previous is None:
                call_media.track(live.media)
            if change.end is not None:
                # Synchronous with the end, before the teardown closes the media.
                call_media.call_ending(live.call_id)

    calls.transition_listeners.append(on_transition)
    runner = web.AppRunner(
        metrics_app(registry, call_media.refresh), handle_signals=False, access_log=None
    )
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
        await call_media.aclose()
