"""A call WebSocket client for tests: send requests, wait for messages by type, no sleeping.

Every message the server sends is validated against ``signaling.ws_protocol``'s server
union, so a test also checks that the server speaks the documented vocabulary. Messages
are kept in arrival order; ``wait_for`` takes the first unconsumed one that matches,
reading more (with a timeout) until one arrives.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from signaling.ws_limits import WS_PATH
from signaling.ws_protocol import parse_server_message

DEFAULT_TIMEOUT = 10.0
Message = dict[str, Any]


class WsClosed(AssertionError):
    def __init__(self, code: int | None, waiting_for: str) -> None:
        super().__init__(f"socket closed (code {code}) while waiting for {waiting_for}")
        self.code = code


class WsClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pending: list[Message] = []
        self.log: list[Message] = []
        self._ids = itertools.count(1)
        self.hello: Message = {}
        self.close_code: int | None = None

    @classmethod
    async def connect(
        cls, client: TestClient[Any, Any], *, origin: str | None = None, **kwargs: Any
    ) -> WsClient:
        """Open a socket as ``client``'s signed-in user and wait for ``hello``."""
        if origin is None:
            origin = str(client.make_url("/")).rstrip("/")
        ws = await client.ws_connect(WS_PATH, headers={"Origin": origin}, **kwargs)
        self = cls(ws)
        self.hello = await self.wait_for("hello")
        return self

    @property
    def user_id(self) -> str:
        return str(self.hello["user_id"])

    # --- sending -------------------------------------------------------------------------

    async def send(self, type: str, **fields: Any) -> None:
        await self.ws.send_str(json.dumps({"type": type, **fields}))

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)

    async def request(self, type: str, timeout: float = DEFAULT_TIMEOUT, **fields: Any) -> Message:
        """Send with a fresh ``id`` and answer the reply carrying it (any type, error too)."""
        request_id = next(self._ids)
        await self.send(type, id=request_id, **fields)
        return await self.wait_for(
            None, lambda m: m.get("id") == request_id, timeout=timeout, what=f"reply to {type}"
        )

    async def ok(self, type: str, timeout: float = DEFAULT_TIMEOUT, **fields: Any) -> Message:
        """``request`` that must not answer ``error``."""
        reply = await self.request(type, timeout=timeout, **fields)
        assert reply["type"] != "error", f"{type} refused: {reply['error']}"
        return reply

    async def error(self, type: str, code: str, **fields: Any) -> Message:
        """``request`` that must answer ``error`` with ``code``; answers the error body."""
        reply = await self.request(type, **fields)
        assert reply["type"] == "error", f"{type} was not refused: {reply}"
        assert reply["error"]["code"] == code, reply["error"]
        return dict(reply["error"])

    # --- receiving -----------------------------------------------------------------------

    async def _read(self, timeout: float, what: str) -> Message:
        frame = await self.ws.receive(timeout=timeout)
        if frame.type is aiohttp.WSMsgType.TEXT:
            parse_server_message(frame.data)  # the documented vocabulary, or it raises
            message: Message = json.loads(frame.data)
            self.log.append(message)
            return message
        if frame.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
        ):
            self.close_code = self.ws.close_code
            raise WsClosed(self.close_code, what)
        if frame.type is aiohttp.WSMsgType.ERROR:
            self.close_code = self.ws.close_code
            raise WsClosed(self.close_code, what)
        raise AssertionError(f"unexpected frame {frame.type} while waiting for {what}")

    async def wait_for(
        self,
        type: str | None,
        predicate: Callable[[Message], bool] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        what: str | None = None,
    ) -> Message:
        def matches(m: Message) -> bool:
            return (type is None or m.get("type") == type) and (predicate is None or predicate(m))

        what = what or type or "a message"
        for i, message in enumerate(self.pending):
            if matches(message):
                return self.pending.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}; unconsumed: {self.pending}"
                )
            try:
                message = await self._read(left, what)
            except TimeoutError:
                continue
            if matches(message):
                return message
            self.pending.append(message)

    async def call_state(self, state: str, timeout: float = DEFAULT_TIMEOUT) -> Message:
        return await self.wait_for(
            "call_state", lambda m: m["state"] == state, timeout=timeout, what=f"call {state}"
        )

    async def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> int | None:
        """Read until the server closes the socket; answer the close code."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    frame = await self.ws.receive()
                    if frame.type in (
                        aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.ERROR,
                    ):
                        break
                    if frame.type is aiohttp.WSMsgType.TEXT:
                        self.pending.append(json.loads(frame.data))
        except TimeoutError:
            raise AssertionError(
                f"the server did not close the socket within {timeout} s"
            ) from None
        self.close_code = self.ws.close_code
        return self.close_code

    def types(self) -> list[str]:
        return [m["type"] for m in self.log]

    async def close(self) -> None:
        await self.ws.close()
