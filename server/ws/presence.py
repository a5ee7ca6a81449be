"""Who is online, over which sockets, and who wants to know.

The registry is the call service's ``Outbox`` (it reaches every socket of a person) and
answers presence: a person is online while they hold at least one open socket. A socket
subscribes to the other parties of the user's threads and hears when they come and go.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydantic import BaseModel

from server.calls.seams import CallSocket
from server.ws.connection import Connection
from signaling.ws_limits import CloseCode
from signaling.ws_protocol import presence_message

log = logging.getLogger(__name__)


class PresenceRegistry:
    def __init__(self) -> None:
        self._sockets: dict[str, list[Connection]] = {}
        self._watchers: dict[str, set[Connection]] = {}
        self._watching: dict[Connection, frozenset[str]] = {}

    # --- sockets -----------------------------------------------------------------------

    def count(self, user_id: str) -> int:
        return len(self._sockets.get(user_id, ()))

    def add(self, connection: Connection) -> None:
        sockets = self._sockets.setdefault(connection.user_id, [])
        sockets.append(connection)
        if len(sockets) == 1:
            self._announce(connection.user_id, online=True)

    def remove(self, connection: Connection) -> None:
        self.subscribe(connection, ())
        sockets = self._sockets.get(connection.user_id)
        if sockets is None or connection not in sockets:
            return
        sockets.remove(connection)
        if not sockets:
            del self._sockets[connection.user_id]
            self._announce(connection.user_id, online=False)

    def connections(self) -> list[Connection]:
        return [c for sockets in self._sockets.values() for c in sockets]

    def close_session(self, session_id: str) -> int:
        """Close (4001) every socket of a session that ended; answer how many."""
        closing = [c for c in self.connections() if c.session_id == session_id and c.is_open]
        for conn in closing:
            conn.close(CloseCode.SESSION_ENDED, "session ended")
        return len(closing)

    # --- Outbox ------------------------------------------------------------------------

    def sockets_of(self, user_id: str) -> list[CallSocket]:
        return list(self._sockets.get(user_id, ()))

    def send_to_user(self, user_id: str, message: BaseModel) -> int:
        return sum(1 for c in list(self._sockets.get(user_id, ())) if c.send(message))

    def is_online(self, user_id: str) -> bool:
        return any(c.is_open for c in self._sockets.get(user_id, ()))

    # --- presence ----------------------------------------------------------------------

    def subscribe(self, connection: Connection, user_ids: Iterable[str]) -> None:
        """Replace what ``connection`` watches; the caller checked it may see them."""
        wanted = frozenset(user_ids)
        for user_id in self._watching.pop(connection, frozenset()):
            watchers = self._watchers.get(user_id)
            if watchers is not None:
                watchers.discard(connection)
                if not watchers:
                    del self._watchers[user_id]
        if wanted:
            self._watching[connection] = wanted
            for user_id in wanted:
                self._watchers.setdefault(user_id, set()).add(connection)

    def _announce(self, user_id: str, *, online: bool) -> None:
        message = presence_message(user_id, online)
        for watcher in list(self._watchers.get(user_id, ())):
            watcher.send(message)
