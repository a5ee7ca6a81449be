"""One parsed client message in, its reply (or error) out; errors translated in one place.

Handlers run one at a time per socket (the socket loop awaits each), so a client's
messages take effect in the order it sent them.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.calls.errors import CallError
from server.calls.service import CallService
from server.db.models import Thread
from server.log_context import log_context
from server.ws.connection import Connection
from server.ws.presence import PresenceRegistry
from signaling.call_state import CallStateError
from signaling.media_errors import (
    InvalidCandidateError,
    MediaBridgeError,
    MediaNegotiationError,
    UnknownParticipantError,
)
from signaling.ws_protocol import (
    AcceptCallMessage,
    AnswerMessage,
    CancelCallMessage,
    ClientChatMessage,
    ClientIceCandidateMessage,
    ClientMessage,
    DeclineCallMessage,
    ErrorCode,
    ErrorMessage,
    HangUpMessage,
    MediaStateMessage,
    OfferMessage,
    PingMessage,
    ReportCallMessage,
    StartCallMessage,
    SubscribePresenceMessage,
    ack_message,
    error_code_for,
    error_message,
    pong_message,
    presence_message,
)

log = logging.getLogger(__name__)

# The media bridge's refusals of an offer that a new offer could fix.
_SDP_CODES = frozenset(
    {
        "sdp_too_large",
        "sdp_invalid",
        "offer_media_sections",
        "no_supported_audio_codec",
        "no_supported_video_codec",
        "video_codec_mismatch",
        "negotiation_failed",
    }
)


def error_reply(exc: Exception, request_id: int | None) -> ErrorMessage | None:
    """The ``error`` for a refused request, or None for an unexpected failure."""
    match exc:
        case CallError():
            return error_message(exc.code, exc.message, request_id, exc.reasons)
        case CallStateError():
            code = error_code_for(exc)
            text = "no such call" if code is ErrorCode.NOT_FOUND else str(exc)
            return error_message(code, text, request_id)
        case InvalidCandidateError():
            return error_message(
                ErrorCode.INVALID_MESSAGE, f"bad ICE candidate: {exc.message}", request_id
            )
        case UnknownParticipantError():
            return error_message(
                ErrorCode.NOT_ALLOWED, "send an offer before ICE candidates", request_id
            )
        case MediaNegotiationError() if exc.code in _SDP_CODES:
            return error_message(ErrorCode.SDP_INVALID, exc.message, request_id)
        case MediaNegotiationError() if exc.code == "bridge_closed":
            return error_message(ErrorCode.CALL_NOT_LIVE, "the call has ended", request_id)
        case MediaBridgeError():
            return error_message(ErrorCode.NOT_ALLOWED, exc.message, request_id)
    return None


class Dispatcher:
    def __init__(
        self,
        *,
        calls: CallService,
        presence: PresenceRegistry,
        db: async_sessionmaker[AsyncSession],
    ) -> None:
        self._calls = calls
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
        ack: list[BaseModel] = [ack_message(message.id)] if message.id is not None else []
        match message:
            case PingMessage():
                return [pong_message(message.id)]
            case SubscribePresenceMessage():
                return await self._subscribe_presence(conn, message)
            case StartCallMessage():
                started = await calls.start_call(conn, message.thread_id, base_url=conn.base_url)
                return [started.model_copy(update={"id": message.id})]
            case AcceptCallMessage():
                await calls.accept(conn, message.call_id)
                return ack
            case DeclineCallMessage():
                await calls.decline(conn, message.call_id)
                return ack
            case CancelCallMessage():
                await calls.cancel(conn, message.call_id)
                return ack
            case HangUpMessage():
                await calls.hang_up(conn, message.call_id)
                return ack
            case OfferMessage():
                answer = await calls.offer(conn, message.call_id, message.sdp)
                return [AnswerMessage(id=message.id, call_id=message.call_id, sdp=answer)]
            case ClientIceCandidateMessage():
                await calls.add_candidate(
                    conn,
                    message.call_id,
                    message.candidate,
                    message.sdp_mid,
                    message.sdp_mline_index,
                )
                return ack
            case MediaStateMessage():
                await calls.set_media_state(
                    conn, message.call_id, audio=message.audio, video=message.video
                )
                return ack
            case ClientChatMessage():
                result = await calls.chat(conn, message.call_id, message.text)
                return list(
                    calls.chat_reply(
                        message.call_id, conn.user_id, message.text, result, message.id
                    )
                )
            case ReportCallMessage():
                await calls.report(
                    conn.user_id, message.call_id, message.reason.value, message.details
                )
                return ack
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
