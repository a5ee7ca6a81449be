"""One parsed client message in, its reply (or error) out; errors translated in one place.

Handlers run one at a time per socket (the socket loop awaits each), so a client's
messages take effect in the order it sent them.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.calls.commands import CALL_COMMANDS, error_reply
from server.calls.notifications import wire_message
from server.calls.service import CallService
from server.cluster.router import CallRouter
from server.db.models import Thread
from server.log_context import log_context
from server.ws.connection import Connection
from server.ws.presence import PresenceRegistry
from signaling.ws_protocol import (
    ClientMessage,
    ErrorCode,
    PingMessage,
    StartCallMessage,
    SubscribePresenceMessage,
    ack_message,
    error_message,
    pong_message,
    presence_message,
)

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        *,
        calls: CallService,
        router: CallRouter,
        presence: PresenceRegistry,
        db: async_sessionmaker[AsyncSession],
    ) -> None:
        self._calls = calls
        self._router = router
        self._presence = presence
        self._db = db

    async def dispatch(self, conn: Connection, message: ClientMessage) -> None:
        # Log lines (and the tasks started) while handling a call's message name the call.
        with log_context(call_id=getattr(message, "call_id", None)):
            await self._dispatch(conn, message)

    async def _dispatch(self, conn: Connection, message: ClientMessage) -> None:
        try:
            replies = await self._handle(conn, message)
        except Exception as exc:
            reply = error_reply(exc, message.id)
            if reply is None:
                log.exception("conn=%s %s failed", conn.id, message.type)
                reply = error_message(
                    ErrorCode.INTERNAL_ERROR, "the server failed; nothing was done", message.id
                )
            else:
                log.info("conn=%s %s refused: %s", conn.id, message.type, reply.error.code)
            conn.send(reply)
            return
        for model in replies:
            conn.send(model)

    async def _handle(self, conn: Connection, message: ClientMessage) -> list[BaseModel]:
        calls = self._calls
        match message:
            case PingMessage():
                return [pong_message(message.id)]
            case SubscribePresenceMessage():
                return await self._subscribe_presence(conn, message)
            case StartCallMessage():
                started = await calls.start_call(conn, message.thread_id, base_url=conn.base_url)
                return [wire_message(started, request_id=message.id)]
            case _ if isinstance(message, CALL_COMMANDS):
                return await self._router.run(conn, message)
        raise AssertionError(f"unhandled message type {message.type}")  # pragma: no cover

    async def _subscribe_presence(
        self, conn: Connection, message: SubscribePresenceMessage
    ) -> list[BaseModel]:
        wanted = set(message.thread_ids)
        others: set[str] = set()
        if wanted:
            async with self._db() as session:
                rows = (
                    await session.execute(
                        select(Thread.seller_id, Thread.buyer_id).where(
                            Thread.id.in_(wanted),
                            or_(Thread.seller_id == conn.user_id, Thread.buyer_id == conn.user_id),
                        )
                    )
                ).all()
            for seller_id, buyer_id in rows:
                others.add(buyer_id if seller_id == conn.user_id else seller_id)
        self._presence.subscribe(conn, others)
        replies: list[BaseModel] = [ack_message(message.id)] if message.id is not None else []
        replies += [
            presence_message(user_id, self._presence.is_online(user_id))
            for user_id in sorted(others)
        ]
        return replies
