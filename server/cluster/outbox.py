"""Reaching a person's sockets on every node, and knowing who is online anywhere.

``ClusterOutbox`` is the call service's ``Outbox``: a message for a person goes to their
sockets here at once and, through the bus, to their sockets on every other node (built
into its wire form once, here). Presence across nodes is rebuilt from the bus alone:
each node announces when a person's first socket opens or last one closes on it, answers
a newcomer's (or a reconnected node's) ``presence_sync`` with who is online on it, and
forgets a node that died.

Sending to the bus is done by one task in FIFO order, so the messages of a call reach
remote sockets in the order they were sent. Its queue is bounded; while the bus is down,
what cannot be sent is dropped (remote sockets catch up when they reconnect: the owner
re-sends the call's state to a socket that re-attaches).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

from pydantic import BaseModel

from server.calls.seams import CallSocket
from server.cluster.bus import ALL, Bus, BusUnavailable, Envelope
from server.ws.presence import PresenceRegistry
from signaling.ws_protocol import dump_message

log = logging.getLogger(__name__)

SEND_QUEUE_MAX: Final = 10_000


class BusSender:
    """Publishes envelopes in order from one owned task; never blocks the caller."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[tuple[str, Envelope]] = asyncio.Queue(SEND_QUEUE_MAX)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="bus-sender")

    def send(self, to: str, envelope: Envelope) -> None:
        try:
            self._queue.put_nowait((to, envelope))
        except asyncio.QueueFull:
            self._dropped(envelope, "queue full")

    def _dropped(self, envelope: Envelope, why: str) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning("bus: dropped %s (%s); %d dropped so far", envelope["kind"], why,
                        self.dropped)  # fmt: skip

    async def _run(self) -> None:
        while True:
            to, envelope = await self._queue.get()
            try:
                await self._bus.publish(to, envelope)
            except BusUnavailable:
                self._dropped(envelope, "bus unavailable")
            except Exception:
                log.exception("bus: publishing %s failed", envelope.get("kind"))
            finally:
                self._queue.task_done()

    async def aclose(self) -> None:
        if self._task is not None:
            # Send what is queued (bounded), then stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._queue.join()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class ClusterOutbox:
    def __init__(self, presence: PresenceRegistry, bus: Bus, sender: BusSender) -> None:
        self._presence = presence
        self._bus = bus
        self._sender = sender
        self._remote_online: dict[str, set[str]] = {}
        presence.online_elsewhere = self.online_elsewhere
        presence.on_local_change.append(self._announce_local_change)

    # --- Outbox ----------------------------------------------------------------------------

    def send_to_user(
        self, user_id: str, message: BaseModel, *, exclude_connection: str | None = None
    ) -> int:
        text = dump_message(message)
        sent = self._presence.send_text_to_user(
            user_id, text, exclude_connection=exclude_connection
        )
        self._sender.send(
            ALL,
            {"kind": "to_user", "user_id": user_id, "text": text, "exclude": exclude_connection},
        )
        return sent

    def send_to_connection(self, node_id: str, connection_id: str, user_id: str, text: str) -> None:
        if node_id == self._bus.node_id:
            conn = self._presence.connection(connection_id, user_id)
            if conn is not None:
                conn.send_text(text)
            return
        self._sender.send(
            node_id,
            {"kind": "to_conn", "conn_id": connection_id, "user_id": user_id, "text": text},
        )

    def sockets_of(self, user_id: str) -> list[CallSocket]:
        return self._presence.sockets_of(user_id)

    def is_online(self, user_id: str) -> bool:
        return self._presence.is_online(user_id)

    def online_elsewhere(self, user_id: str) -> bool:
        return bool(self._remote_online.get(user_id))

    # --- presence across nodes ----------------------------------------------------------

    def _announce_local_change(self, user_id: str, online: bool) -> None:
        self._sender.send(ALL, {"kind": "presence", "user_id": user_id, "online": online})

    def request_sync(self) -> None:
        """Ask every other node who is online on it (at start, after a bus outage)."""
        self._sender.send(ALL, {"kind": "presence_sync"})

    def _set_remote(self, node_id: str, user_id: str, online: bool) -> None:
        before = self._presence.is_online(user_id)
        nodes = self._remote_online.setdefault(user_id, set())
        if online:
            nodes.add(node_id)
        else:
            nodes.discard(node_id)
            if not nodes:
                del self._remote_online[user_id]
        after = self._presence.is_online(user_id)
        if before != after:
            self._presence.announce(user_id, online=after)

    def forget_node(self, node_id: str) -> None:
        for user_id in [u for u, nodes in self._remote_online.items() if node_id in nodes]:
            self._set_remote(node_id, user_id, False)

    def on_envelope(self, envelope: Envelope) -> None:
        """Handle the envelopes that are about sockets and presence."""
        origin = str(envelope.get("from", ""))
        match envelope.get("kind"):
            case "to_user":
                self._presence.send_text_to_user(
                    str(envelope["user_id"]),
                    str(envelope["text"]),
                    exclude_connection=_opt_str(envelope.get("exclude")),
                )
            case "to_conn":
                conn = self._presence.connection(str(envelope["conn_id"]), str(envelope["user_id"]))
                if conn is not None:
                    conn.send_text(str(envelope["text"]))
            case "presence":
                self._set_remote(origin, str(envelope["user_id"]), bool(envelope["online"]))
            case "presence_sync":
                self._sender.send(
                    origin,
                    {"kind": "presence_snapshot", "users": self._presence.online_users_here()},
                )
            case "presence_snapshot":
                users = {str(u) for u in envelope.get("users") or ()}
                for user_id in users:
                    self._set_remote(origin, user_id, True)
                for user_id in [u for u, nodes in self._remote_online.items() if origin in nodes]:
                    if user_id not in users:
                        self._set_remote(origin, user_id, False)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
