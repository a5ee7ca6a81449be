"""The call-scoped commands of the WebSocket, run on the node that owns the call.

``run_call_command`` takes a parsed client message for a live call and the socket it
came from (this node's ``Connection``, or a ``RemoteCallSocket`` when the message came in
on another node) and answers the replies for that socket; ``error_reply`` translates a
refusal into its ``error`` reply, in one place for both.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel

from server.calls.errors import CallError
from server.calls.notifications import chat_replies
from server.calls.seams import CallSocket
from server.calls.service import CallService
from signaling.aiortc_patches import MEDIA_PORTS_EXHAUSTED
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
    ConnectionQualityMessage,
    DeclineCallMessage,
    ErrorCode,
    ErrorMessage,
    HangUpMessage,
    MediaStateMessage,
    OfferMessage,
    ReportCallMessage,
    ack_message,
    error_code_for,
    error_message,
)

log = logging.getLogger(__name__)

CallCommand = (
    AcceptCallMessage
    | DeclineCallMessage
    | CancelCallMessage
    | HangUpMessage
    | OfferMessage
    | ClientIceCandidateMessage
    | MediaStateMessage
    | ConnectionQualityMessage
    | ClientChatMessage
    | ReportCallMessage
)
CALL_COMMANDS = (
    AcceptCallMessage,
    DeclineCallMessage,
    CancelCallMessage,
    HangUpMessage,
    OfferMessage,
    ClientIceCandidateMessage,
    MediaStateMessage,
    ConnectionQualityMessage,
    ClientChatMessage,
    ReportCallMessage,
)

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
        case MediaNegotiationError() if exc.code == MEDIA_PORTS_EXHAUSTED:
            # Capacity, not the offer: the same offer succeeds once a call ends.
            return error_message(ErrorCode.UNAVAILABLE, exc.message, request_id)
        case MediaNegotiationError() if exc.code == "bridge_closed":
            return error_message(ErrorCode.CALL_NOT_LIVE, "the call has ended", request_id)
        case MediaNegotiationError() if exc.code == "rate_limited":
            return error_message(ErrorCode.RATE_LIMITED, exc.message, request_id)
        case MediaBridgeError():
            return error_message(ErrorCode.NOT_ALLOWED, exc.message, request_id)
    return None


async def answer_call_command(
    calls: CallService, socket: CallSocket, message: CallCommand
) -> list[BaseModel]:
    """``run_call_command``'s replies, or the ``error`` reply it was refused with."""
    try:
        return await run_call_command(calls, socket, message)
    except Exception as exc:
        reply = error_reply(exc, message.id)
        if reply is None:
            log.exception("conn=%s %s failed", socket.id, message.type)
            reply = error_message(
                ErrorCode.INTERNAL_ERROR, "the server failed; nothing was done", message.id
            )
        else:
            log.info("conn=%s %s refused: %s", socket.id, message.type, reply.error.code)
        return [reply]


async def run_call_command(
    calls: CallService, socket: CallSocket, message: CallCommand
) -> list[BaseModel]:
    ack: list[BaseModel] = [ack_message(message.id)] if message.id is not None else []
    match message:
        case AcceptCallMessage():
            await calls.accept(socket, message.call_id)
            return ack
        case DeclineCallMessage():
            await calls.decline(socket, message.call_id)
            return ack
        case CancelCallMessage():
            await calls.cancel(socket, message.call_id)
            return ack
        case HangUpMessage():
            await calls.hang_up(socket, message.call_id)
            return ack
        case OfferMessage():
            answer = await calls.offer(socket, message.call_id, message.sdp)
            return [AnswerMessage(id=message.id, call_id=message.call_id, sdp=answer)]
        case ClientIceCandidateMessage():
            await calls.add_candidate(
                socket,
                message.call_id,
                message.candidate,
                message.sdp_mid,
                message.sdp_mline_index,
            )
            return ack
        case MediaStateMessage():
            await calls.set_media_state(
                socket, message.call_id, audio=message.audio, video=message.video
            )
            return ack
        case ConnectionQualityMessage():
            await calls.relay_connection_quality(socket, message.call_id, message.level)
            return ack
        case ClientChatMessage():
            posted = await calls.chat(socket, message.call_id, message.text)
            return chat_replies(posted, message.id)
        case ReportCallMessage():
            await calls.report(
                socket.user_id, message.call_id, message.reason.value, message.details
            )
            return ack
    raise AssertionError(f"unhandled message type {message.type}")  # pragma: no cover
