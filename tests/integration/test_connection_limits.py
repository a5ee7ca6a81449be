"""Bounded connections over real sockets, the way ``inboxcall serve`` listens (issue 13,
finding 7: 300 half-sent requests and 100 idle connections were all open after 90 s;
no connection cap; close code 1013 never sent).

The timeouts are set small; every wait is on the socket itself (the server closing it),
bounded by a generous timeout, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from server.app import create_app
from server.appkeys import CONNECTION_GUARD
from server.connection_limits import ConnectionGuard, serve_http
from signaling.ws_limits import WS_PATH
from tests.support.service import AUTH, make_settings

pytestmark = pytest.mark.integration

SLOW_SOCKETS = 20
WAIT = 30.0  # far above the timeouts below: only a server that never closes runs into it


@dataclass
class Served:
    app: web.Application
    runner: web.AppRunner
    port: int

    @property
    def guard(self) -> ConnectionGuard:
        return self.app[CONNECTION_GUARD]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def raw(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def open_count(self, expected: int) -> None:
        """Until the server counts ``expected`` connections (accepts run on its loop)."""
        async with asyncio.timeout(WAIT):
            while self.guard.open_connections != expected:
                await asyncio.sleep(0.01)


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(**overrides: Any) -> Served:
        settings = make_settings(tmp_path / f"node{len(runners)}", **overrides)
        app = create_app(settings)
        runner = await serve_http(app)
        runners.append(runner)
        return Served(app, runner, runner.addresses[0][1])

    yield start
    for runner in runners:
        await runner.cleanup()


def fresh_session() -> aiohttp.ClientSession:
    """No pooled keep-alive connections: each request is its own, counted, connection."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection."""
    received = b""
    async with asyncio.timeout(WAIT):
        while chunk := await reader.read(4096):
            received += chunk
    return received


async def trickle(
    served: Served, head: bytes, drip: bytes = b"a", every: float = 0.2
) -> tuple[bytes, int]:
    """Send ``head``, then one byte of ``drip`` every ``every`` seconds until the server
    closes the connection; answer what it sent back and how many bytes were dripped."""
    reader, writer = await served.raw()
    writer.write(head)
    dripped = 0
    received = b""
    try:
        async with asyncio.timeout(WAIT):
            while True:
                try:
                    chunk = await asyncio.wait_for(reader.read(4096), every)
                except TimeoutError:
                    writer.write(drip)
                    await writer.drain()
                    dripped += 1
                    continue
                if not chunk:
                    return received, dripped
                received += chunk
    except (ConnectionResetError, BrokenPipeError):
        return received, dripped
    finally:
        writer.close()


async def test_half_sent_requests_are_dropped_after_the_header_timeout(serve: Serve) -> None:
    served = await serve(http_header_timeout_seconds=1.0)
    head = b"GET /api/v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    results = await asyncio.gather(*(trickle(served, head) for _ in range(SLOW_SOCKETS)))
    for received, dripped in results:
        assert received == b""  # dropped, never answered
        assert dripped >= 1  # it really was trickling when the server gave up on it
    assert served.guard.header_timeouts == SLOW_SOCKETS
    await served.open_count(0)
    async with fresh_session() as http:
        assert (await http.get(served.base + "/healthz")).status == 200


async def test_idle_connections_are_closed_before_and_between_requests(serve: Serve) -> None:
    served = await serve(http_header_timeout_seconds=1.0, http_idle_timeout_seconds=1.5)
    silent = [await served.raw() for _ in range(SLOW_SOCKETS)]
    assert await asyncio.gather(*(closed_by_server(r) for r, _ in silent)) == [b""] * SLOW_SOCKETS

    # A kept-alive connection that finished a request and then says nothing.
    reader, writer = await served.raw()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert head.startswith(b"HTTP/1.1 200")
    length = int(next(v for k, _, v in (line.partition(b": ") for line in head.split(b"\r\n"))
                      if k.lower() == b"content-length"))  # fmt: skip
    await reader.readexactly(length)
    assert await closed_by_server(reader) == b""
    for _, w in [*silent, (reader, writer)]:
        w.close()


async def test_a_trickled_body_is_answered_408_and_closed(serve: Serve) -> None:
    served = await serve(http_body_timeout_seconds=1.0, http_header_timeout_seconds=5.0)
    head = (
        b"POST /api/v1/threads/t/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{"
    )
    received, dripped = await trickle(served, head, drip=b" ")
    assert dripped >= 1
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408")
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["error"]["code"] == "request_timeout"
    assert served.guard.body_timeouts == 1


async def test_past_the_connection_cap_http_answers_503_and_the_websocket_1013(
    serve: Serve,
) -> None:
    served = await serve(max_connections=3, http_header_timeout_seconds=60.0)
    held = [await served.raw() for _ in range(3)]
    await served.open_count(3)
    async with fresh_session() as http:
        busy = await http.get(served.base + "/api/v1/threads")
        assert busy.status == 503
        assert busy.headers["Retry-After"] == "5"
        assert (await busy.json())["error"]["code"] == "server_busy"
        assert (await http.get(served.base + "/healthz")).status == 200  # liveness still answers

        ws = await http.ws_connect(served.base + WS_PATH, headers={"Origin": served.base})
        frame = await ws.receive(timeout=WAIT)
        assert frame.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1013
        await ws.close()

        for _, writer in held:
            writer.close()
        await served.open_count(0)
        upsert = await http.put(
            served.base + "/api/v1/integration/users/u1",
            json={"role": "buyer", "display_name": "U"},
            headers=AUTH,
        )
        assert upsert.status in (200, 201)
    assert served.guard.refused_busy == 1


async def test_a_websocket_outlives_the_header_timeout_through_the_guarded_site(
    serve: Serve,
) -> None:
    """The deadline is for headers only: an upgraded socket is a request in progress."""
    served = await serve(http_header_timeout_seconds=0.5)
    # unsafe=True: the cookie jar keeps cookies of an IP address (127.0.0.1) only so.
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=served.base, cookie_jar=jar) as http:
        user = {"role": "buyer", "display_name": "B"}
        await http.put("/api/v1/integration/users/b1", json=user, headers=AUTH)
        minted = await http.post("/api/v1/integration/users/b1/login-token", headers=AUTH)
        token = (await minted.json())["token"]
        login = await http.get("/login", params={"token": token}, allow_redirects=False)
        assert login.status == 302
        ws = await http.ws_connect(WS_PATH, headers={"Origin": served.base})
        assert json.loads((await ws.receive(timeout=WAIT)).data)["type"] == "hello"
        # A silent connection opened now is dropped at its deadline; the socket is not.
        reader, writer = await served.raw()
        assert await closed_by_server(reader) == b""
        writer.close()
        await ws.send_str(json.dumps({"type": "ping", "id": 1}))
        assert json.loads((await ws.receive(timeout=WAIT)).data)["type"] == "pong"
        await ws.close()
