"""The aiohttp application: middlewares, routes, and resources in cleanup_ctx."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server import health, join_page, pages
from server.api import admin, ice_servers, inbox, integration, review
from server.api import calls as calls_api
from server.api.openapi import Handler, install_openapi
from server.appkeys import (
    CALL_ENDED_HOOKS,
    CONNECTION_GUARD,
    DB,
    ELIGIBILITY_WATCH,
    MEDIA_HOST,
    READINESS_CHECKS,
    RECORDING_SINK_FACTORY,
    RECORDING_STORAGE,
    RECORDINGS,
    RETENTION_JOB,
    REVIEWS,
    SESSION_ENDED_HOOKS,
    SETTINGS,
    WEBHOOK_SENDER,
)
from server.cluster.setup import cluster_ctx
from server.connection_limits import ConnectionGuard, connection_limits_middleware
from server.db.migrate import upgrade_to_head_async
from server.db.session import make_engine, make_session_factory
from server.eligibility_watch import EligibilityWatch
from server.errors import json_error_middleware
from server.log_context import log_context
from server.media.call_media import MediaHost
from server.media.local_host import (
    LocalMediaHost,
    SinkFactory,
    StagingRecorders,
    sink_factory_from,
)
from server.media.staging_space import StagingSpace
from server.media.worker_pool import MediaWorkerPool
from server.metrics.endpoint import metrics_ctx
from server.recording_service import RecordingService, check_store, make_store
from server.retention_job import RetentionJob
from server.review.service import ReviewLifecycle
from server.settings import Settings
from server.webhooks.outbox import enable_webhooks
from server.webhooks.sender import WebhookSender
from server.write_throttle import WRITE_THROTTLES, WriteThrottles
from server.ws.setup import add_call_signalling
from signaling import aiortc_patches, ws_limits
from signaling.media_bandwidth import BandwidthSettings
from signaling.media_bridge import BridgeSettings

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@web.middleware
async def security_headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Join and login links carry tokens in the query: never send them on as a referrer.
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@web.middleware
async def log_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request about one call (join page, review) names it in its log lines."""
    with log_context(call_id=request.match_info.get("call_id")):
        return await handler(request)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade_to_head_async(url)
    engine = make_engine(url)
    app[DB] = make_session_factory(engine)
    yield
    await engine.dispose()


async def webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
    """With ``INBOXCALL_WEBHOOK_URL`` set, changes write their events and the sender posts
    them. Registered right after the database: sessions opened by later contexts already
    write events, and the sender stops only after calls ended and recordings were stored
    (what it has not posted by then waits in the outbox for the next start)."""
    settings = app[SETTINGS]
    if not settings.webhook_url:
        yield
        return
    enable_webhooks(app[DB])
    sender = WebhookSender(settings, app[DB])
    app[WEBHOOK_SENDER] = sender
    sender.start()
    yield
    await sender.aclose()


def bridge_settings_from(settings: Settings) -> BridgeSettings:
    """In-process media's bridge settings (a worker builds its own from ``WorkerConfig``)."""
    return BridgeSettings(
        bandwidth=BandwidthSettings(
            max_leg_bitrate_bps=settings.max_leg_bitrate_kbps * 1000,
            receiver_driven=settings.receiver_driven_bitrate,
        )
    )


async def media_ctx(app: web.Application) -> AsyncIterator[None]:
    """Where calls' media runs: the node's media worker processes, or (``media_workers``
    0) this process. ICE gathers host candidates only on the configured addresses."""
    settings = app[SETTINGS]
    addresses = settings.ice_host_address_list or None
    space = StagingSpace(settings.recording_staging_dir, settings.staging_min_free_bytes)
    host: MediaHost
    if settings.resolved_media_workers == 0:
        aiortc_patches.configure_media_sockets(
            addresses,
            udp_receive_buffer_bytes=settings.media_udp_receive_buffer_bytes,
            port_range=settings.media_port_range,
            announced=settings.announced_address_map,
        )
        staging = StagingRecorders(
            settings.recording_staging_dir, budget_bytes=settings.resolved_staging_bytes_per_call
        )

        def sink_factory() -> SinkFactory:
            seam = app.get(RECORDING_SINK_FACTORY)
            return staging if seam is None else sink_factory_from(seam)

        host = LocalMediaHost(
            sink_factory, bridge_settings=bridge_settings_from(settings), staging_space=space
        )
    else:
        pool = MediaWorkerPool(
            settings.resolved_media_workers,
            staging=settings.recording_staging_dir,
            ice_host_addresses=addresses,
            udp_receive_buffer_bytes=settings.media_udp_receive_buffer_bytes,
            port_range=settings.media_port_range,
            announced_addresses=settings.announced_address_map,
            log_format=settings.log_format,
            node_name=settings.resolved_node_name,
            max_leg_bitrate_bps=settings.max_leg_bitrate_kbps * 1000,
            receiver_driven_bitrate=settings.receiver_driven_bitrate,
            staging_space=space,
            staging_budget_bytes=settings.resolved_staging_bytes_per_call,
            max_calls_per_worker=settings.media_max_calls_per_worker or None,
        )
        await pool.start()
        host = pool
    app[MEDIA_HOST] = host
    app[READINESS_CHECKS]["media"] = lambda: _check_media(host)
    # A node that cannot record a new call is not ready for one.
    app[READINESS_CHECKS]["recording_staging"] = space.check
    try:
        yield
    finally:
        await host.aclose()
        if settings.resolved_media_workers == 0:
            aiortc_patches.reset_media_sockets()


async def _check_media(host: MediaHost) -> None:
    if not host.ready:
        raise RuntimeError("no media worker is running")


async def recordings_ctx(app: web.Application) -> AsyncIterator[None]:
    """Recording storage, the recording service (and its upload retries), the review
    lifecycle and the retention timer.

    Registered before the call service so that, at shutdown, calls end first and their
    recordings are finalised after.
    """
    settings = app[SETTINGS]
    store = make_store(settings)
    app[RECORDING_STORAGE] = store
    app[READINESS_CHECKS]["recording_storage"] = lambda: check_store(store)
    service = RecordingService(settings, app[DB], store)
    app[RECORDINGS] = service
    app[REVIEWS] = ReviewLifecycle(settings, app[DB], app[ELIGIBILITY_WATCH])
    # Once a call ended, its media host finished its recordings: store them and draw the
    # review sample. A test that substitutes a recording spy replaces this hook.
    if RECORDING_SINK_FACTORY not in app:
        app[CALL_ENDED_HOOKS].append(service.call_ended)
    recovered = await service.recover_interrupted()
    if recovered:
        log.warning("finalised the recordings of %d interrupted call(s)", len(recovered))
    service.start()
    job = RetentionJob(settings, app[DB], store)
    app[RETENTION_JOB] = job
    job.start()
    yield
    await job.aclose()
    await service.aclose()


def create_app(settings: Settings) -> web.Application:
    guard = ConnectionGuard(settings)
    app = web.Application(
        client_max_size=settings.max_request_body_bytes,
        middlewares=[
            log_context_middleware,
            security_headers_middleware,
            json_error_middleware,
            # Liveness answers past the cap; the WebSocket refuses after the upgrade (1013).
            connection_limits_middleware(
                guard, uncapped_paths=frozenset({"/healthz", ws_limits.WS_PATH})
            ),
            integration.integration_key_middleware,
        ],
    )
    app[SETTINGS] = settings
    app[CONNECTION_GUARD] = guard
    app[ELIGIBILITY_WATCH] = EligibilityWatch()
    app[READINESS_CHECKS] = {}
    app[SESSION_ENDED_HOOKS] = []
    app[WRITE_THROTTLES] = WriteThrottles.from_settings(settings)
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(cluster_ctx)
    app.cleanup_ctx.append(webhooks_ctx)
    app.cleanup_ctx.append(media_ctx)
    app.cleanup_ctx.append(recordings_ctx)
    add_call_signalling(app)
    app.cleanup_ctx.append(metrics_ctx)
    health.add_routes(app)
    inbox.add_routes(app)
    integration.add_routes(app)
    review.add_routes(app)
    admin.add_routes(app)
    calls_api.add_routes(app)
    ice_servers.add_routes(app)
    join_page.add_routes(app)
    pages.add_routes(app)
    install_openapi(app)
    return app
