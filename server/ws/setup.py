"""Wires the call service and the call WebSocket into the app.

``add_call_signalling(app)`` registers the route, a ``cleanup_ctx`` that owns the call
service and the socket registry, and an ``on_shutdown`` hook. At shutdown the hook ends
every live call (``server_shutdown``) while the sockets are still open, so both people
hear it, then closes every socket with 1001; the context's exit ends anything that is
left and waits for every teardown, so nothing keeps running after the app stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from server.appkeys import (
    BUS,
    CALL_ENDED_HOOKS,
    CALL_ROUTER,
    CALLS,
    DB,
    ELIGIBILITY_WATCH,
    MEDIA_HOST,
    SESSION_ENDED_HOOKS,
    SETTINGS,
    WS_COUNTERS,
    WS_DISPATCHER,
    WS_PRESENCE,
)
from server.calls.reaper import end_calls_of_dead_node
from server.calls.service import CallService
from server.clock import utcnow
from server.cluster.node import NodeRegistry
from server.cluster.outbox import BusSender, ClusterOutbox
from server.cluster.router import CallRouter
from server.ws.dispatch import Dispatcher
from server.ws.presence import PresenceRegistry
from server.ws.session_watch import SessionWatch
from server.ws.socket_counters import SocketCounters
from server.ws.socket_loop import websocket_handler
from signaling import ws_limits
from signaling.ws_limits import CloseCode

log = logging.getLogger(__name__)


async def calls_ctx(app: web.Application) -> AsyncIterator[None]:
    db = app[DB]
    bus = app[BUS]
    presence = PresenceRegistry()
    sender = BusSender(bus)
    outbox = ClusterOutbox(presence, bus, sender)
    calls = CallService(
        settings=app[SETTINGS],
        db=db,
        outbox=outbox,
        media=app[MEDIA_HOST],
        call_ended_hooks=app[CALL_ENDED_HOOKS],
        node_id=bus.node_id,
        bus_healthy=lambda: bus.healthy,
    )
    router = CallRouter(calls=calls, bus=bus, sender=sender, outbox=outbox, db=db)
    sender.start()
    bus.subscribe(router.on_envelope)
    bus.on_reconnect(outbox.request_sync)
    await calls.end_stale_calls()

    async def on_dead_node(node_id: str) -> None:
        outbox.forget_node(node_id)
        await end_calls_of_dead_node(db, outbox, node_id, utcnow())

    nodes = NodeRegistry(db, bus.node_id, _address(app), on_dead_node)
    await nodes.start()
    outbox.request_sync()
    app[WS_PRESENCE] = presence
    app[WS_COUNTERS] = SocketCounters()
    app[CALLS] = calls
    app[CALL_ROUTER] = router
    app[WS_DISPATCHER] = Dispatcher(calls=calls, router=router, presence=presence, db=db)
    app[ELIGIBILITY_WATCH].subscribe(calls.on_eligibility_change)
    app[ELIGIBILITY_WATCH].subscribe(router.eligibility_changed)
    sessions = SessionWatch(presence, app[DB])
    sessions.start()
    try:
        yield
    finally:
        await sessions.aclose()
        await calls.aclose()
        await _close_sockets(presence)
        await router.aclose()
        await nodes.aclose()
        await sender.aclose()


def _address(app: web.Application) -> str:
    settings = app[SETTINGS]
    return settings.public_url or f"http://{settings.host}:{settings.port}"


async def _close_sockets(presence: PresenceRegistry) -> None:
    connections = presence.connections()
    for conn in connections:
        conn.close(CloseCode.GOING_AWAY, "server shutdown")
    # Each socket's own clean-up does the closing handshake (itself bounded); wait for them.
    if connections:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ws_limits.CLOSE_TIMEOUT_SECONDS + 1):
                await asyncio.gather(*(conn.wait_finished() for conn in connections))


async def _on_shutdown(app: web.Application) -> None:
    calls = app.get(CALLS)
    presence = app.get(WS_PRESENCE)
    if calls is not None:
        await calls.shutdown()
    if presence is not None:
        await _close_sockets(presence)


def _close_sockets_of_session(app: web.Application) -> Callable[[str], None]:
    def hook(session_id: str) -> None:
        presence = app.get(WS_PRESENCE)
        if presence is not None and presence.close_session(session_id):
            log.info("closed the sockets of a session that ended")

    return hook


def add_call_signalling(app: web.Application) -> None:
    """Register after the recorder's cleanup_ctx: calls end before recordings finalise."""
    if CALL_ENDED_HOOKS not in app:
        app[CALL_ENDED_HOOKS] = []
    if SESSION_ENDED_HOOKS not in app:
        app[SESSION_ENDED_HOOKS] = []
    app[SESSION_ENDED_HOOKS].append(_close_sockets_of_session(app))
    app.cleanup_ctx.append(calls_ctx)
    app.on_shutdown.append(_on_shutdown)
    app.router.add_get(ws_limits.WS_PATH, websocket_handler)
