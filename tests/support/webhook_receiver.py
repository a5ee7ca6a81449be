"""The host marketplace's webhook endpoint: a real aiohttp server on loopback.

It checks every request's signature the way the README tells a host to (written out
here on purpose, not by calling inboxcall's signing code), records what arrived, and
answers the statuses a test scripts (200 once the script runs out).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

SECRET = "whsec-test-" + "s" * 24
MAX_CLOCK_SKEW_S = 300


@dataclass(frozen=True)
class Delivery:
    body: bytes
    event: dict[str, Any]
    signature_ok: bool
    answered: int

    @property
    def id(self) -> str:
        return str(self.event["id"])

    @property
    def type(self) -> str:
        return str(self.event["type"])


def verify(header: str, body: bytes, secret: str = SECRET) -> bool:
    """``t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``, recent ``t``."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    t, v1 = parts.get("t", ""), parts.get("v1", "")
    if not t.isdigit() or abs(time.time() - int(t)) > MAX_CLOCK_SKEW_S:
        return False
    expected = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, v1)


class WebhookReceiver:
    def __init__(self) -> None:
        self.url = ""
        self.deliveries: list[Delivery] = []
        self.script: deque[int] = deque()
        self.default_status = 200
        self.latency = 0.0  # seconds the host takes to answer
        self._changed = asyncio.Condition()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.latency:
            await asyncio.sleep(self.latency)
        status = self.script.popleft() if self.script else self.default_status
        delivery = Delivery(
            body=body,
            event=json.loads(body),
            signature_ok=verify(request.headers.get("Inboxcall-Signature", ""), body),
            answered=status,
        )
        async with self._changed:
            self.deliveries.append(delivery)
            self._changed.notify_all()
        return web.json_response({"ok": 200 <= status < 300}, status=status)

    def of_type(self, event_type: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.type == event_type]

    def accepted(self) -> list[Delivery]:
        return [d for d in self.deliveries if 200 <= d.answered < 300]

    async def wait_for(
        self, predicate: Callable[[list[Delivery]], bool], what: str, timeout: float = 30
    ) -> list[Delivery]:
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: predicate(self.deliveries)), timeout
                )
            except TimeoutError:
                seen = [(d.type, d.answered) for d in self.deliveries]
                raise AssertionError(f"timed out waiting for {what}; received {seen}") from None
        return list(self.deliveries)


@asynccontextmanager
async def running_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    app = web.Application()
    app.router.add_post("/hooks/inboxcall", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}/hooks/inboxcall"
    try:
        yield receiver
    finally:
        await runner.cleanup()
