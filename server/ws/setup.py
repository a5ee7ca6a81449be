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
from collections.abc import AsyncIterator

from aiohttp import web

from server.appkeys import (
    CALL_ENDED_HOOKS,
    CALLS,
    DB,
    ELIGIBILITY_WATCH,
    MEDIA_HOST,
    SETTINGS,
    WS_DISPATCHER,
    WS_PRESENCE,
)
from server.calls.service import CallService
from server.ws.dispatch import Dispatcher
from server.ws.presence import PresenceRegistry
from server.ws.socket_loop import websocket_handler
from signaling import ws_limits
from signaling.ws_limits import CloseCode

log = logging.getLogger(__name__)


async def calls_ctx(app: web.Application) -> AsyncIterator[None]:
    presence = PresenceRegistry()
    calls = CallService(
        settings=app[SETTINGS],
        db=app[DB],
        outbox=presence,
        media=app[MEDIA_HOST],
        call_ended_hooks=app[CALL_ENDED_HOOKS],
    )
    await calls.end_stale_calls()
    app[WS_PRESENCE] = presence
    app[CALLS] = calls
    app[WS_DISPATCHER] = Dispatcher(calls=calls, presence=presence, db=app[DB])
    app[ELIGIBILITY_WATCH].subscribe(calls.on_eligibility_change)
    try:
        yield
    finally:
        await calls.aclose()
        await _close_sockets(presence)


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


def add_call_signalling(app: web.Application) -> None:
    """Register after the recorder's cleanup_ctx: calls end before recordings finalise."""
    if CALL_ENDED_HOOKS not in app:
        app[CALL_ENDED_HOOKS] = []
    app.cleanup_ctx.append(calls_ctx)
    app.on_shutdown.append(_on_shutdown)
    app.router.add_get(ws_limits.WS_PATH, websocket_handler)
