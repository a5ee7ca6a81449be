"""What the call service needs from its neighbours, as Protocols (no imports of them).

* ``CallSocket``: one open WebSocket of a signed-in person (``server.ws`` implements it).
* ``Outbox``: reaches every open socket of a person (``server.ws.presence`` implements it).
* ``CallEndedHook``: runs once a call ended and its media (``server.media``) closed, with
  the recordings its media host finished (``server.appkeys.CALL_ENDED_HOOKS``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from pydantic import BaseModel

from recorder import FinalisedRecording


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


CallEndedHook = Callable[[str, Sequence[FinalisedRecording]], Awaitable[None]]
"""``hook(call_id, recordings)``: after the call row is stored as ended and its media closed,
with what its media host recorded."""
