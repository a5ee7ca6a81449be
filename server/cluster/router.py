"""Routing a call's commands to the node that owns the call, and the bus's call traffic.

A socket can be on any node; a live call runs on exactly one (its owner: the node where
it started, recorded in ``calls.owner_node``). ``CallRouter.run`` answers a call command
here when this node owns the call (or nobody does: the call service then answers "ended"
or "not found"), and otherwise asks the owner over the bus and relays its replies. The
owner sees the far socket as a ``RemoteCallSocket``: what it sends goes back through the
bus to that socket. Sockets opening and closing, and eligibility changes, are told to
every node, so the owner of a person's call hears of them wherever they happen.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Final

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.calls.commands import CallCommand, answer_call_command
from server.calls.errors import CallError
from server.calls.service import CallService
from server.cluster.bus import ALL, Bus, BusUnavailable, Envelope
from server.cluster.outbox import BusSender, ClusterOutbox
from server.db.models import Call
from server.eligibility_snapshots import LIVE_CALL_STATES
from server.eligibility_watch import EligibilityChange
from server.owned_tasks import OwnedTasks
from server.ws.connection import Connection
from signaling.ws_protocol import ErrorCode, ProtocolError, dump_message, parse_client_message

log = logging.getLogger(__name__)

RPC_TIMEOUT_S: Final = 10.0
MAX_PENDING_RPCS: Final = 10_000


class RemoteCallSocket:
    """A socket on another node, as the owner of a call sees it."""

    def __init__(self, node_id: str, connection_id: str, user_id: str, outbox: ClusterOutbox):
        self.node_id = node_id
        self._id = connection_id
        self._user_id = user_id
        self._outbox = outbox

    @property
    def id(self) -> str:
        return self._id

    @property
    def user_id(self) -> str:
        return self._user_id

    @property
    def is_open(self) -> bool:
        return True  # until its node says it closed (the call service then drops it)

    def send(self, message: BaseModel) -> bool:
        self._outbox.send_to_connection(
            self.node_id, self._id, self._user_id, dump_message(message)
        )
        return True


class CallRouter:
    def __init__(
        self,
        *,
        calls: CallService,
        bus: Bus,
        sender: BusSender,
        outbox: ClusterOutbox,
        db: async_sessionmaker[AsyncSession],
    ) -> None:
        self._calls = calls
        self._bus = bus
        self._sender = sender
        self._outbox = outbox
        self._db = db
        self._rpc_ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[list[str]]] = {}
        self._tasks = OwnedTasks("call router")

    @property
    def node_id(self) -> str:
        return self._bus.node_id

    # --- commands ---------------------------------------------------------------------

    async def owner_of(self, call_id: str) -> str | None:
        if self._calls.live_call(call_id) is not None:
            return self.node_id
        async with self._db() as session:
            row = (
                await session.execute(
                    select(Call.owner_node).where(
                        Call.id == call_id, Call.state.in_(LIVE_CALL_STATES)
                    )
                )
            ).first()
        return None if row is None else row[0]

    async def run(self, conn: Connection, message: CallCommand) -> list[BaseModel]:
        owner = await self.owner_of(message.call_id)
        if owner is None or owner == self.node_id:
            return await answer_call_command(self._calls, conn, message)
        for text in await self._ask(owner, conn, message):
            conn.send_text(text)
        return []

    async def _ask(self, owner: str, conn: Connection, message: CallCommand) -> list[str]:
        if len(self._pending) >= MAX_PENDING_RPCS:
            raise CallError(ErrorCode.UNAVAILABLE, "this node is overloaded; try again")
        rpc_id = next(self._rpc_ids)
        future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._pending[rpc_id] = future
        try:
            await self._bus.publish(
                owner,
                {
                    "kind": "call_command",
                    "rpc": rpc_id,
                    "conn_id": conn.id,
                    "user_id": conn.user_id,
                    "message": message.model_dump_json(),
                },
            )
            async with asyncio.timeout(RPC_TIMEOUT_S):
                return await future
        except BusUnavailable:
            raise CallError(
                ErrorCode.UNAVAILABLE,
                "the node running this call cannot be reached right now; try again",
            ) from None
        except TimeoutError:
            raise CallError(
                ErrorCode.UNAVAILABLE, "the node running this call did not answer; try again"
            ) from None
        finally:
            self._pending.pop(rpc_id, None)

    # --- socket events ----------------------------------------------------------------

    def socket_opened(self, conn: Connection) -> None:
        self._sender.send(
            ALL, {"kind": "socket_opened", "conn_id": conn.id, "user_id": conn.user_id}
        )

    def socket_closed(self, conn: Connection) -> None:
        self._sender.send(
            ALL, {"kind": "socket_closed", "conn_id": conn.id, "user_id": conn.user_id}
        )

    async def eligibility_changed(self, change: EligibilityChange) -> None:
        """A local eligibility change: every other node re-checks its calls too."""
        self._sender.send(
            ALL,
            {
                "kind": "eligibility",
                "thread_ids": sorted(change.thread_ids),
                "user_ids": sorted(change.user_ids),
            },
        )

    # --- the bus ----------------------------------------------------------------------

    def on_envelope(self, envelope: Envelope) -> None:
        kind = envelope.get("kind")
        origin = str(envelope.get("from", ""))
        match kind:
            case "call_command":
                self._tasks.spawn(self._answer(origin, envelope), name="call-command-remote")
            case "call_reply":
                future = self._pending.get(int(envelope.get("rpc") or 0))
                if future is not None and not future.done():
                    future.set_result([str(t) for t in envelope.get("texts") or ()])
            case "socket_opened":
                socket = self._remote_socket(origin, envelope)
                self._tasks.spawn(self._calls.socket_opened(socket), name="socket-opened-remote")
            case "socket_closed":
                socket = self._remote_socket(origin, envelope)
                self._tasks.spawn(self._calls.socket_closed(socket), name="socket-closed-remote")
            case "eligibility":
                change = EligibilityChange(
                    frozenset(str(t) for t in envelope.get("thread_ids") or ()),
                    frozenset(str(u) for u in envelope.get("user_ids") or ()),
                )
                self._tasks.spawn(
                    self._calls.on_eligibility_change(change), name="eligibility-remote"
                )
            case _:
                self._outbox.on_envelope(envelope)

    def _remote_socket(self, origin: str, envelope: Envelope) -> RemoteCallSocket:
        return RemoteCallSocket(
            origin, str(envelope["conn_id"]), str(envelope["user_id"]), self._outbox
        )

    async def _answer(self, origin: str, envelope: Envelope) -> None:
        socket = self._remote_socket(origin, envelope)
        try:
            message = parse_client_message(str(envelope["message"]))
        except ProtocolError:
            log.warning("node %s sent a call command that does not parse", origin)
            return
        replies = await answer_call_command(self._calls, socket, message)  # type: ignore[arg-type]
        self._sender.send(
            origin,
            {
                "kind": "call_reply",
                "rpc": envelope.get("rpc"),
                "texts": [dump_message(r) for r in replies],
            },
        )

    async def aclose(self) -> None:
        await self._tasks.aclose()
        for future in self._pending.values():
            if not future.done():
                future.cancel()
