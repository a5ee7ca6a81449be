"""The bus between nodes: one small interface, an in-process and a Redis implementation.

A node publishes an envelope (a JSON object with a ``kind``) either to every other node
(``ALL``) or to one node by id. Publishing never delivers to the publisher itself: the
caller acts locally first, then tells the others. Delivery is at most once and unordered
across publishers (pub/sub): the bus carries notifications and requests that can be
retried; nothing stored lives only on it. Both implementations pass the same contract
tests (``tests/integration/test_bus_contract.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final, Protocol

log = logging.getLogger(__name__)

ALL: Final = "*"
Envelope = dict[str, Any]
Handler = Callable[[Envelope], None]
"""Called on the loop for each envelope that reaches this node; must not block."""


class BusUnavailable(Exception):
    """The bus cannot be reached now; what was published was not sent."""


class Bus(Protocol):
    @property
    def node_id(self) -> str: ...

    @property
    def healthy(self) -> bool:
        """Whether envelopes can be sent and received right now."""

    def subscribe(self, handler: Handler) -> None:
        """Hear every envelope sent to this node or to all; set before ``start``."""

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Told after the bus came back from an outage (state may have been missed)."""

    async def publish(self, to: str, envelope: Envelope) -> None:
        """Send to ``ALL`` other nodes or to one node id; raises ``BusUnavailable``."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class LocalHub:
    """Joins in-process buses: the embedded default has one; contract tests use two."""

    def __init__(self) -> None:
        self.buses: dict[str, LocalBus] = {}
        self.down = False  # contract tests take the hub down to show BusUnavailable


class LocalBus:
    def __init__(self, node_id: str, hub: LocalHub | None = None) -> None:
        self._node_id = node_id
        self._hub = hub or LocalHub()
        self._handlers: list[Handler] = []
        self._reconnect: list[Callable[[], None]] = []

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def healthy(self) -> bool:
        return not self._hub.down

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._reconnect.append(callback)

    async def publish(self, to: str, envelope: Envelope) -> None:
        if self._hub.down:
            raise BusUnavailable("the in-process hub is down")
        envelope = {**envelope, "from": self._node_id}
        loop = asyncio.get_running_loop()
        for node_id, bus in list(self._hub.buses.items()):
            if node_id != self._node_id and to in (ALL, node_id):
                loop.call_soon(bus.deliver, envelope)

    def deliver(self, envelope: Envelope) -> None:
        for handler in list(self._handlers):
            try:
                handler(envelope)
            except Exception:
                log.exception("bus handler failed on %s", envelope.get("kind"))

    async def start(self) -> None:
        self._hub.buses[self._node_id] = self

    async def aclose(self) -> None:
        self._hub.buses.pop(self._node_id, None)
