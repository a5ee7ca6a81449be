"""The bus on Redis pub/sub (redis-py's asyncio client).

Two channels per node: ``<prefix>:all`` and ``<prefix>:node:<id>``. Redis holds nothing
here that cannot be rebuilt: a node that reconnects after an outage asks the others for
what it may have missed (``on_reconnect``). While Redis is unreachable ``healthy`` is
False, ``publish`` raises ``BusUnavailable`` at once, and a reader task keeps trying to
reconnect with a growing pause (up to 2 s), so the node recovers by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any, Final, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from server.cluster.bus import ALL, BusUnavailable, Envelope, Handler

log = logging.getLogger(__name__)

PING_INTERVAL_S: Final = 1.0
RECONNECT_PAUSES_S: Final = (0.1, 0.25, 0.5, 1.0, 2.0)
SOCKET_TIMEOUT_S: Final = 2.0
MAX_ENVELOPE_BYTES: Final = 1024 * 1024
MIN_POLL_S: Final = 0.01


class RedisBus:
    def __init__(self, url: str, node_id: str, *, prefix: str = "inboxcall") -> None:
        self._url = url
        self._node_id = node_id
        self._prefix = prefix
        self._channel_all = f"{prefix}:all"
        self._channel_node = f"{prefix}:node:{node_id}"
        self._handlers: list[Handler] = []
        self._reconnect: list[Callable[[], None]] = []
        self._client: aioredis.Redis | None = None
        self._healthy = False
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._recheck = False
        self._closing = False

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def healthy(self) -> bool:
        return self._healthy

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._reconnect.append(callback)

    def _new_client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self._url,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
            health_check_interval=5,
        )

    async def start(self) -> None:
        """Connect and subscribe; returns once subscribed, or after a few seconds while
        Redis is down (the node then starts unhealthy and recovers by itself)."""
        self._client = self._new_client()
        self._reader = asyncio.get_running_loop().create_task(
            self._run(), name=f"redis-bus-{self._node_id}"
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._connected.wait()

    async def publish(self, to: str, envelope: Envelope) -> None:
        if not self._healthy or self._client is None:
            raise BusUnavailable("Redis is unreachable")
        channel = self._channel_all if to == ALL else f"{self._prefix}:node:{to}"
        body = json.dumps({**envelope, "from": self._node_id}, separators=(",", ":"))
        try:
            await self._client.publish(channel, body)
        except (RedisError, OSError) as exc:
            # The reader decides when the bus is back: make it reconnect and re-check.
            self._set_healthy(False)
            self._recheck = True
            raise BusUnavailable(f"Redis is unreachable ({type(exc).__name__})") from None

    def _set_healthy(self, healthy: bool) -> None:
        if healthy != self._healthy:
            self._healthy = healthy
            if healthy:
                log.info("cluster bus connected (Redis)")
            else:
                log.warning("cluster bus lost: Redis is unreachable; retrying")

    async def _run(self) -> None:
        attempt = 0
        first = True
        while not self._closing:
            assert self._client is not None
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            self._recheck = False
            try:
                await pubsub.subscribe(self._channel_all, self._channel_node)
                self._set_healthy(True)
                self._connected.set()
                attempt = 0
                if not first:
                    for callback in list(self._reconnect):
                        try:
                            callback()
                        except Exception:
                            log.exception("bus reconnect callback failed")
                first = False
                await self._listen(pubsub)
            except (RedisError, OSError) as exc:
                log.debug("redis bus: %s", exc)
            except Exception:
                # Whatever it was, the reader must live on: it is how the node recovers.
                log.exception("redis bus: unexpected failure; reconnecting")
            finally:
                self._set_healthy(False)
                with contextlib.suppress(Exception):
                    # Typed in some redis-py releases, not in others.
                    await cast(Any, pubsub).aclose()
            if self._closing:
                return
            await asyncio.sleep(RECONNECT_PAUSES_S[min(attempt, len(RECONNECT_PAUSES_S) - 1)])
            attempt += 1

    async def _listen(self, pubsub: Any) -> None:
        assert self._client is not None
        loop = asyncio.get_running_loop()
        last_ping = loop.time()
        while not self._closing:
            if not pubsub.subscribed or self._recheck:
                # After a dropped connection redis-py answers "no message" at once, which
                # would spin the loop; and a failed publish means the link may be broken:
                # resubscribe from the top either way.
                raise ConnectionError("the subscription was lost or a publish failed")
            asked = loop.time()
            message = await pubsub.get_message(timeout=PING_INTERVAL_S)
            if message is not None and message.get("type") == "message":
                self._deliver(message.get("data"))
            elif message is None and loop.time() - asked < MIN_POLL_S:
                await asyncio.sleep(MIN_POLL_S)
            if loop.time() - last_ping >= PING_INTERVAL_S:
                # A silent Redis (stopped, partitioned) shows up here within a second.
                await pubsub.ping()
                last_ping = loop.time()

    def _deliver(self, data: Any) -> None:
        if not isinstance(data, bytes | str) or len(data) > MAX_ENVELOPE_BYTES:
            log.warning("dropped a bus message that is not a bounded JSON text")
            return
        try:
            envelope = json.loads(data)
        except ValueError:
            log.warning("dropped a bus message that is not JSON")
            return
        if not isinstance(envelope, dict) or envelope.get("from") == self._node_id:
            return
        for handler in list(self._handlers):
            try:
                handler(envelope)
            except Exception:
                log.exception("bus handler failed on %s", envelope.get("kind"))

    async def aclose(self) -> None:
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
        self._healthy = False
