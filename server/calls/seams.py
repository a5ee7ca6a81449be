"""What the call service needs from its neighbours, as Protocols (no imports of them).

* ``CallSocket``: one open WebSocket of a signed-in person (``server.ws`` implements it).
* ``Outbox``: reaches every open socket of a person (``server.ws.presence`` implements it).
* ``RecordingSinkFactory`` and ``CallEndedHook``: the recording seam. The factory is asked
  for a sink when a call starts (before any media can flow); the hooks run once the call
  ended, its media bridge is closed and its sink closed. Both are looked up through
  ``server.appkeys`` (``RECORDING_SINK_FACTORY``, ``CALL_ENDED_HOOKS``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from pydantic import BaseModel

from signaling.media_sink import EncodedFrameSink


class CallSocket(Protocol):
    @property
    def id(self) -> str:
        """The connection id (logged; quoted by clients)."""

    @property
    def user_id(self) -> str: ...

    @property
    def is_open(self) -> bool: ...

    def send(self, message: BaseModel) -> bool:
        """Queue one message; never blocks. False if the socket is closing or dropped."""


class Outbox(Protocol):
    def send_to_user(self, user_id: str, message: BaseModel) -> int:
        """Queue ``message`` on every open socket of ``user_id``; answer how many."""

    def sockets_of(self, user_id: str) -> list[CallSocket]: ...

    def is_online(self, user_id: str) -> bool: ...


class RecordingSink(EncodedFrameSink, Protocol):
    """The bridge's frame sink for one call, closed by the call service at call end."""

    async def aclose(self) -> object:
        """Stop taking frames and finish writing; safe to call twice."""


RecordingSinkFactory = Callable[[str], RecordingSink | Awaitable[RecordingSink | None] | None]
"""``factory(call_id)``: the call's recording sink, or ``None`` to record nothing.

Sync or async. If it raises, the call is not started (every call is recorded)."""

CallEndedHook = Callable[[str], Awaitable[None]]
"""``hook(call_id)``: after the call row is stored as ended, the bridge and sink closed."""
