"""Bounded HTTP connections: header, body and idle timeouts, and a per-node cap.

aiohttp bounds the size of a request line and headers but not the time they take, and
keeps a connection that sends nothing for ``keepalive_timeout`` (an hour by default):
300 half-sent requests (a byte every 10 s) and 100 idle connections were all still open
after 90 s. The seams used here are aiohttp's public ones:

- ``GuardedTCPSite`` listens like ``web.TCPSite`` but wraps each connection's protocol
  (aiohttp's ``RequestHandler``) in ``_GuardedConnection``, a pass-through
  ``asyncio.Protocol`` that drops (aborts) a connection whose request headers do not
  arrive within ``INBOXCALL_HTTP_HEADER_TIMEOUT_SECONDS``: from the connection's start for
  its first request, from the first byte of each later one.
- ``connection_limits_middleware`` marks when a request's headers are in (the deadline
  stops), reads a request body within ``INBOXCALL_HTTP_BODY_TIMEOUT_SECONDS`` (else 408),
  and answers 503 ``server_busy`` past ``INBOXCALL_MAX_CONNECTIONS`` open connections.
  The call WebSocket closes with 1013 instead (``server/ws/socket_loop.py``).
- A connection waiting between requests is closed by aiohttp's own ``keepalive_timeout``
  (``INBOXCALL_HTTP_IDLE_TIMEOUT_SECONDS``, set by ``make_runner``).

An app served another way (aiohttp's ``TestServer``) has no guarded connections: its
count is 0 and nothing is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from server.appkeys import CONNECTION_GUARD, SETTINGS
from server.errors import error_response
from server.settings import Settings

log = logging.getLogger(__name__)

BUSY_RETRY_AFTER_SECONDS = 5
"""What a refused client is told to wait (``Retry-After``)."""

ProtocolFactory = Callable[[], asyncio.Protocol]


class ConnectionGuard:
    """This node's open connections and their bounds; one per app (``CONNECTION_GUARD``)."""

    def __init__(self, settings: Settings) -> None:
        self.header_timeout = settings.http_header_timeout_seconds
        self.body_timeout = settings.http_body_timeout_seconds
        self.max_connections = settings.max_connections
        self._open: set[_GuardedConnection] = set()
        # Counters for operators (and tests): what the bounds cut off.
        self.header_timeouts = 0
        self.body_timeouts = 0
        self.refused_busy = 0

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def over_capacity(self) -> bool:
        """More connections are open (the asking one included) than this node serves."""
        return len(self._open) > self.max_connections

    def wrap(self, factory: ProtocolFactory) -> ProtocolFactory:
        return lambda: _GuardedConnection(factory(), self)

    def _opened(self, connection: _GuardedConnection) -> None:
        self._open.add(connection)

    def _closed(self, connection: _GuardedConnection) -> None:
        self._open.discard(connection)


class _GuardedConnection(asyncio.Protocol):
    """Passes everything to aiohttp's protocol; owns the header deadline of one connection."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._in_request = False

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._guard._opened(self)
        self._arm()  # the first request's headers are due from the connection's start
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._in_request and self._deadline is None:
            self._arm()  # the first byte of the next request on a kept-alive connection
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._guard._closed(self)
        self._transport = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # --- the request's course, told by the middleware ------------------------------------

    def request_started(self) -> None:
        self._in_request = True
        self._disarm()

    def request_finished(self) -> None:
        self._in_request = False

    # --- the deadline ----------------------------------------------------------------------

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if self._in_request or self._transport is None:
            return
        self._guard.header_timeouts += 1
        log.debug("dropped a connection whose request headers did not arrive in time")
        # abort, not close: close() would wait for a client that does not read to drain.
        self._transport.abort()


def _guarded(request: web.Request) -> _GuardedConnection | None:
    transport = request.transport
    protocol = transport.get_protocol() if transport is not None else None
    return protocol if isinstance(protocol, _GuardedConnection) else None


def _refusal(status: int, code: str, message: str) -> web.Response:
    response = error_response(status, code, message)
    response.force_close()  # this connection is what is in excess, or misbehaving
    return response


def connection_limits_middleware(
    guard: ConnectionGuard, *, uncapped_paths: frozenset[str]
) -> Middleware:
    """``uncapped_paths`` are answered past the cap too (liveness; the WebSocket, which
    refuses with its own close code after the upgrade)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        connection = _guarded(request)
        if connection is not None:
            connection.request_started()
        try:
            if guard.over_capacity() and request.path not in uncapped_paths:
                guard.refused_busy += 1
                busy = _refusal(
                    503, "server_busy", "The service is at capacity. Try again in a few seconds."
                )
                busy.headers["Retry-After"] = str(BUSY_RETRY_AFTER_SECONDS)
                return busy
            if request.body_exists:
                # Bodies are small (client_max_size): read each within the timeout here, so a
                # client trickling one cannot hold a handler; handlers read it from cache.
                try:
                    async with asyncio.timeout(guard.body_timeout):
                        await request.read()
                except TimeoutError:
                    guard.body_timeouts += 1
                    return _refusal(
                        408, "request_timeout", "The request body did not arrive in time."
                    )
            return await handler(request)
        finally:
            if connection is not None:
                connection.request_finished()

    return middleware


class GuardedTCPSite(web.BaseSite):
    """``web.TCPSite`` whose connections are bounded by ``guard``."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, guard: ConnectionGuard
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._guard = guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # BaseSite's constructor checked setup() ran
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.wrap(server), self._host, self._port, reuse_address=True
        )


class PathOnlyAccessLogger(AbstractAccessLogger):
    """aiohttp's access log without query strings: login and join links carry tokens there."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %.3f s',
            request.remote,
            request.method,
            request.path,
            response.status,
            time,
        )


def make_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    """The app's runner: aiohttp closes a connection idle between requests after the idle
    timeout (its ``keepalive_timeout``, an hour by default)."""
    return web.AppRunner(
        app,
        handle_signals=False,
        keepalive_timeout=settings.http_idle_timeout_seconds,
        # Login and join tokens travel in query strings: the access log shows paths only.
        access_log_class=PathOnlyAccessLogger,
    )


async def serve_http(app: web.Application) -> web.AppRunner:
    """Start ``app`` (its cleanup_ctx) and listen on the configured address with bounded
    connections; the caller ends it with ``runner.cleanup()``."""
    settings = app[SETTINGS]
    runner = make_runner(app, settings)
    await runner.setup()
    try:
        site = GuardedTCPSite(runner, settings.host, settings.port, guard=app[CONNECTION_GUARD])
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
