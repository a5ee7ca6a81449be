"""Who is online, over which sockets, and who wants to know.

The registry holds this node's sockets and answers presence: a person is online while
they hold at least one open socket on any node. A socket subscribes to the other parties
of the user's threads and hears when they come and go. ``online_elsewhere`` says whether
another node has a socket of the person (``server.cluster.outbox`` keeps that), and
``on_local_change`` hears when the person's first socket here opens or last one closes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from pydantic import BaseModel

from server.calls.seams import CallSocket
from server.ws.connection import Connection
from signaling.ws_limits import CloseCode
from signaling.ws_protocol import dump_message, presence_message

log = logging.getLogger(__name__)


class PresenceRegistry:
    def __init__(self) -> None:
        self._sockets: dict[str, list[Connection]] = {}
        self._watchers: dict[str, set[Connection]] = {}
        self._watching: dict[Connection, frozenset[str]] = {}
        self.online_elsewhere: Callable[[str], bool] = lambda _user_id: False
        self.on_local_change: list[Callable[[str, bool], None]] = []

    # --- sockets -----------------------------------------------------------------------

    def count(self, user_id: str) -> int:
        return len(self._sockets.get(user_id, ()))

    def add(self, connection: Connection) -> None:
        sockets = self._sockets.setdefault(connection.user_id, [])
        sockets.append(connection)
        if len(sockets) == 1:
            self._local_change(connection.user_id, online=True)

    def remove(self, connection: Connection) -> None:
        self.subscribe(connection, ())
        sockets = self._sockets.get(connection.user_id)
        if sockets is None or connection not in sockets:
            return
        sockets.remove(connection)
        if not sockets:
            del self._sockets[connection.user_id]
            self._local_change(connection.user_id, online=False)

    def _local_change(self, user_id: str, *, online: bool) -> None:
        for listener in list(self.on_local_change):
            listener(user_id, online)
        if not self.online_elsewhere(user_id):
            self.announce(user_id, online=online)

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

    def send_to_user(
        self, user_id: str, message: BaseModel, *, exclude_connection: str | None = None
    ) -> int:
        return self.send_text_to_user(
            user_id, dump_message(message), exclude_connection=exclude_connection
        )

    def send_text_to_user(
        self, user_id: str, text: str, *, exclude_connection: str | None = None
    ) -> int:
        return sum(
            1
            for c in list(self._sockets.get(user_id, ()))
            if c.id != exclude_connection and c.send_text(text)
        )

    def connection(self, connection_id: str, user_id: str) -> Connection | None:
        for c in self._sockets.get(user_id, ()):
            if c.id == connection_id:
                return c
        return None

    def is_online_here(self, user_id: str) -> bool:
        return any(c.is_open for c in self._sockets.get(user_id, ()))

    def online_users_here(self) -> list[str]:
        return [user_id for user_id in self._sockets if self.is_online_here(user_id)]

    def is_online(self, user_id: str) -> bool:
        return self.is_online_here(user_id) or self.online_elsewhere(user_id)

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

    def announce(self, user_id: str, *, online: bool) -> None:
        """Tell this node's watchers of ``user_id`` (the caller decided it changed)."""
        message = presence_message(user_id, online)
        for watcher in list(self._watchers.get(user_id, ())):
            watcher.send(message)
