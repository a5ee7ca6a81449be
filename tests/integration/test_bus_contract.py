"""The bus contract, passed by both implementations: the in-process bus (two buses on one
hub) and the Redis bus (two buses on a real redis-server on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from server.cluster.bus import ALL, Bus, BusUnavailable, Envelope, LocalBus, LocalHub
from server.cluster.redis_bus import RedisBus
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


class Pair:
    """Two nodes' buses, and a way to take the medium between them down and up."""

    def __init__(
        self,
        a: Bus,
        b: Bus,
        down: Callable[[], Awaitable[None]],
        up: Callable[[], Awaitable[None]],
    ) -> None:
        self.a = a
        self.b = b
        self.down = down
        self.up = up
        self.heard: dict[str, list[Envelope]] = {"a": [], "b": []}
        self.event = asyncio.Event()
        a.subscribe(lambda e: self._hear("a", e))
        b.subscribe(lambda e: self._hear("b", e))

    def _hear(self, who: str, envelope: Envelope) -> None:
        self.heard[who].append(envelope)
        self.event.set()

    async def until(self, check: Callable[[], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                self.event.clear()
                await self.event.wait()


@pytest.fixture(params=["local", "redis"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    if request.param == "local":
        hub = LocalHub()
        a, b = LocalBus("node-a", hub), LocalBus("node-b", hub)

        async def down() -> None:
            hub.down = True

        async def up() -> None:
            hub.down = False

        await a.start()
        await b.start()
        yield Pair(a, b, down, up)
        await a.aclose()
        await b.aclose()
        return
    server = RedisServer()
    await server.start()
    ra, rb = RedisBus(server.url, "node-a"), RedisBus(server.url, "node-b")
    await ra.start()
    await rb.start()
    try:
        yield Pair(ra, rb, server.stop, server.start)
    finally:
        await ra.aclose()
        await rb.aclose()
        await server.close()


async def test_publish_to_all_reaches_the_others_but_not_the_publisher(pair: Pair) -> None:
    await pair.a.publish(ALL, {"kind": "hello", "n": 1})
    await pair.until(lambda: len(pair.heard["b"]) == 1)
    assert pair.heard["b"][0]["kind"] == "hello" and pair.heard["b"][0]["from"] == "node-a"
    await asyncio.sleep(0.2)
    assert pair.heard["a"] == []


async def test_publish_to_one_node_reaches_only_it(pair: Pair) -> None:
    await pair.b.publish("node-a", {"kind": "direct"})
    await pair.b.publish("node-c", {"kind": "nobody"})
    await pair.until(lambda: len(pair.heard["a"]) == 1)
    assert pair.heard["a"][0]["kind"] == "direct"
    await asyncio.sleep(0.2)
    assert pair.heard["b"] == [] and len(pair.heard["a"]) == 1


async def test_one_publishers_envelopes_arrive_in_order(pair: Pair) -> None:
    for n in range(200):
        await pair.a.publish(ALL, {"kind": "seq", "n": n})
    await pair.until(lambda: len(pair.heard["b"]) == 200)
    assert [e["n"] for e in pair.heard["b"]] == list(range(200))


async def test_an_outage_is_reported_then_recovered_by_itself(pair: Pair) -> None:
    reconnected: list[str] = []
    pair.b.on_reconnect(lambda: reconnected.append("b"))
    await pair.down()
    async with asyncio.timeout(10):
        while pair.a.healthy:
            await asyncio.sleep(0.05)
    with pytest.raises(BusUnavailable):
        await pair.a.publish(ALL, {"kind": "lost"})
    await pair.up()
    async with asyncio.timeout(15):
        while not (pair.a.healthy and pair.b.healthy):
            await asyncio.sleep(0.05)
    await pair.a.publish(ALL, {"kind": "after"})
    await pair.until(lambda: any(e["kind"] == "after" for e in pair.heard["b"]))
    assert all(e["kind"] != "lost" for e in pair.heard["b"])
    if isinstance(pair.b, RedisBus):
        assert reconnected == ["b"]


async def test_garbage_on_the_redis_channel_is_dropped() -> None:
    """Anyone who can reach Redis can publish: junk never reaches a handler."""
    server = RedisServer()
    await server.start()
    a, b = RedisBus(server.url, "node-a"), RedisBus(server.url, "node-b")
    await a.start()
    await b.start()
    pair = Pair(a, b, server.stop, server.start)
    client: Any = aioredis.Redis.from_url(server.url)
    try:
        for junk in (b"not json", b"[1, 2]", b"\xff\xfe", b"x" * (2 * 1024 * 1024)):
            await client.publish("inboxcall:all", junk)
        await a.publish(ALL, {"kind": "fine"})
        await pair.until(lambda: any(e["kind"] == "fine" for e in pair.heard["b"]))
        assert [e["kind"] for e in pair.heard["b"]] == ["fine"]
    finally:
        await client.aclose()
        await a.aclose()
        await b.aclose()
        await server.close()
