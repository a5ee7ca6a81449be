"""``GET /api/v1/ws``: the handshake, ``hello``, and the read loop of one socket.

Refused before the upgrade: no valid session (401), another site's ``Origin`` (403, the
rule of ``server.auth.check_same_origin``), not a WebSocket request (400). The upgrade must
complete within ``HANDSHAKE_TIMEOUT_SECONDS`` of the request arriving, else the TCP
connection is dropped. ``hello`` is queued before anything else.

Every log line names the connection (``conn=``); none carries names, SDP or chat text.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from aiohttp import WSMsgType, web

from server.appkeys import (
    CALL_ROUTER,
    CALLS,
    CONNECTION_GUARD,
    DB,
    SETTINGS,
    WS_COUNTERS,
    WS_DISPATCHER,
    WS_PRESENCE,
)
from server.auth import SessionData, check_same_origin, load_session
from server.clock import utcnow
from server.db.models import User
from server.errors import ApiError
from server.log_context import set_connection_id
from server.ws.connection import Connection
from signaling import ws_limits
from signaling.ws_limits import CloseCode, MessageRateLimiter
from signaling.ws_protocol import (
    ErrorCode,
    ProtocolError,
    error_from,
    error_message,
    hello_message,
    parse_client_message,
    request_id_of,
)

log = logging.getLogger(__name__)


def new_connection_id() -> str:
    return "ws-" + secrets.token_hex(8)


async def _handshake(request: web.Request) -> tuple[web.WebSocketResponse, SessionData]:
    check_same_origin(request)
    async with request.app[DB]() as session:
        data = await load_session(request, session)
        user = None if data is None else await session.get(User, data.user_id)
    if data is None or user is None:
        raise ApiError(401, "unauthenticated", "Sign in to continue.")
    ws = web.WebSocketResponse(
        heartbeat=ws_limits.HEARTBEAT_INTERVAL_SECONDS,
        max_msg_size=ws_limits.TRANSPORT_MAX_FRAME_BYTES,
        timeout=ws_limits.CLOSE_TIMEOUT_SECONDS,
        autoping=True,
        compress=False,
    )
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "websocket_required", "This address takes WebSocket connections.")
    await ws.prepare(request)
    return ws, data


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


async def _refuse_at_capacity(request: web.Request) -> web.StreamResponse:
    """Past the node's connection cap: upgrade only to close with 1013 (try again later)."""
    check_same_origin(request)
    ws = web.WebSocketResponse(timeout=ws_limits.CLOSE_TIMEOUT_SECONDS)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "websocket_required", "This address takes WebSocket connections.")
    await ws.prepare(request)
    await ws.close(code=CloseCode.TRY_AGAIN_LATER, message=b"server at capacity")
    return ws


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    if request.app[CONNECTION_GUARD].over_capacity():
        log.info("websocket refused: the node is at its connection cap")
        return await _refuse_at_capacity(request)
    try:
        async with asyncio.timeout(ws_limits.HANDSHAKE_TIMEOUT_SECONDS):
            ws, signed_in = await _handshake(request)
    except TimeoutError:
        log.info("websocket handshake timed out")
        _abort(request)
        return web.Response(status=408)

    presence = request.app[WS_PRESENCE]
    calls = request.app[CALLS]
    router = request.app[CALL_ROUTER]
    settings = request.app[SETTINGS]
    counters = request.app[WS_COUNTERS]
    user_id = signed_in.user_id
    conn = Connection(
        ws,
        connection_id=new_connection_id(),
        user_id=user_id,
        session_id=signed_in.session_id,
        # Never from the request's Host header: a client could make join links (shown to
        # the buyer and stored in the thread) point at any site. Relative unless configured.
        base_url=(settings.public_url or "").rstrip("/"),
        abort=lambda: _abort(request),
        counters=counters,
    )
    # This handler's task is the socket's whole life: every log line written by it, and by
    # the tasks it starts, names the connection.
    set_connection_id(conn.id)
    if presence.count(user_id) >= ws_limits.MAX_CONNECTIONS_PER_USER:
        counters.refused_too_many += 1
        log.info("conn=%s refused: too many sockets for one user", conn.id)
        await ws.close(code=CloseCode.TOO_MANY_CONNECTIONS, message=b"too many connections")
        return ws

    conn.send(
        hello_message(
            connection_id=conn.id,
            user_id=user_id,
            ring_timeout_s=settings.ring_timeout_seconds,
            reconnect_grace_s=settings.reconnect_grace_seconds,
        )
    )
    conn.start()
    presence.add(conn)
    counters.opened += 1
    log.info("conn=%s opened", conn.id)
    # The socket ends with its session: at its expiry it closes with 4001 (sign-out and
    # sessions ended elsewhere close it through the registry and the session sweep).
    loop = asyncio.get_running_loop()
    expiry = loop.call_later(
        max(0.0, (signed_in.expires_at - utcnow()).total_seconds()),
        conn.close,
        CloseCode.SESSION_ENDED,
        "session expired",
    )
    try:
        router.socket_opened(conn)
        await calls.socket_opened(conn)
        await _read_loop(request, ws, conn)
    finally:
        expiry.cancel()

        async def close_down() -> None:
            try:
                # The call hears of the loss before anyone sees the person go offline.
                router.socket_closed(conn)
                await calls.socket_closed(conn)
            finally:
                presence.remove(conn)
                await conn.finish()
                if not ws.closed:
                    await ws.close()
                log.info("conn=%s closed (code %s)", conn.id, ws.close_code)

        await asyncio.shield(calls.run_socket_cleanup(close_down(), name=f"ws-gone-{conn.id}"))
    return ws


async def _read_loop(request: web.Request, ws: web.WebSocketResponse, conn: Connection) -> None:
    dispatcher = request.app[WS_DISPATCHER]
    counters = request.app[WS_COUNTERS]
    loop = asyncio.get_running_loop()
    limiter = MessageRateLimiter(
        rate_per_second=ws_limits.RATE_LIMIT_PER_SECOND,
        burst=ws_limits.RATE_LIMIT_BURST,
        strikes_before_close=ws_limits.RATE_LIMIT_STRIKES_BEFORE_CLOSE,
    )
    while not ws.closed and conn.is_open:
        frame = await conn.receive()
        if frame is None:
            return
        if frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return
        if frame.type is WSMsgType.ERROR:
            log.info("conn=%s read error: %s", conn.id, type(ws.exception()).__name__)
            return
        if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            continue
        text = frame.data if frame.type is WSMsgType.TEXT else None
        if not limiter.allow(loop.time()):
            counters.rate_limited_messages += 1
            if limiter.should_close:
                counters.rate_limit_closes += 1
                log.info("conn=%s kept flooding: closing", conn.id)
                conn.close(CloseCode.POLICY_VIOLATION, "rate limit", flush=False)
                return
            conn.send(
                error_message(
                    ErrorCode.RATE_LIMITED,
                    "too many messages; this one was dropped",
                    request_id_of(text) if text is not None else None,
                )
            )
            continue
        if text is None:
            conn.send(error_message(ErrorCode.INVALID_MESSAGE, "binary frames are not accepted"))
            continue
        try:
            message = parse_client_message(text)
        except ProtocolError as exc:
            conn.send(error_from(exc))
            continue
        await dispatcher.dispatch(conn, message)
