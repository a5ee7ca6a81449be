"""The call WebSocket's vocabulary: every message a pydantic model tagged by ``type``.

Incoming text goes through ``parse_client_message``, which returns one member of the
``ClientMessage`` union or raises ``ProtocolError`` carrying the stable error code and
the request ``id`` to echo; the server answers that with ``error_message``. Server ->
client messages form the separate ``ServerMessage`` union (clients and tests parse them
with ``parse_server_message``). ``docs/websocket-protocol.md`` documents every type here;
a test keeps the two in step.

Models are strict (no "1" for 1, no 1 for true), forbid unknown fields and bound every
string; the numbers come from ``ws_limits``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from signaling import ws_limits
from signaling.call_state import (
    CallEndingSoon,
    CallPhase,
    CallState,
    CallStateError,
    EndReason,
    NotACallParticipant,
)
from signaling.ws_limits import (
    MAX_CANDIDATE_CHARS,
    MAX_CHAT_TEXT_CHARS,
    MAX_DISPLAY_NAME_CHARS,
    MAX_ERROR_MESSAGE_CHARS,
    MAX_FLAG_CHARS,
    MAX_FLAGS,
    MAX_ID_CHARS,
    MAX_PRESENCE_THREADS,
    MAX_REPORT_DETAILS_CHARS,
    MAX_REQUEST_ID,
    MAX_SDP_CHARS,
    MAX_SDP_MID_CHARS,
    MAX_SDP_MLINE_INDEX,
    MAX_URL_CHARS,
    PROTOCOL_VERSION,
)


class ErrorCode(StrEnum):
    """Stable codes of ``error`` replies; clients branch on these, never on the message."""

    INVALID_JSON = "invalid_json"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_TYPE = "unknown_type"
    MESSAGE_TOO_LARGE = "message_too_large"
    RATE_LIMITED = "rate_limited"
    NOT_ALLOWED = "not_allowed"
    NOT_FOUND = "not_found"
    CALL_NOT_LIVE = "call_not_live"
    INELIGIBLE = "ineligible"
    SDP_INVALID = "sdp_invalid"
    UNAVAILABLE = "unavailable"
    """The service cannot take this request now (no media capacity, the cluster bus is
    unreachable); the same request may succeed in a moment."""
    INTERNAL_ERROR = "internal_error"


class ReportReason(StrEnum):
    OFF_PLATFORM_CONTACT = "off_platform_contact"
    HARASSMENT = "harassment"
    INAPPROPRIATE_CONTENT = "inappropriate_content"
    SCAM = "scam"
    OTHER = "other"


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


RequestId = Annotated[int, Field(ge=0, le=MAX_REQUEST_ID)]
# Host ids are opaque strings; printable ASCII without spaces keeps them safe in URLs and logs.
EntityId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=r"^[\x21-\x7e]+$")
]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP_CHARS)]
Candidate = Annotated[str, StringConstraints(max_length=MAX_CANDIDATE_CHARS)]
SdpMid = Annotated[str, StringConstraints(max_length=MAX_SDP_MID_CHARS)]
SdpMLineIndex = Annotated[int, Field(ge=0, le=MAX_SDP_MLINE_INDEX)]
ChatText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_CHAT_TEXT_CHARS),
    AfterValidator(_not_blank),
]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_DISPLAY_NAME_CHARS)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_CHARS)]
Flag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_FLAG_CHARS)]
ErrorText = Annotated[str, StringConstraints(max_length=MAX_ERROR_MESSAGE_CHARS)]
ReportDetails = Annotated[
    str, StringConstraints(max_length=MAX_REPORT_DETAILS_CHARS), AfterValidator(_not_blank)
]
Seconds = Annotated[float, Field(ge=0)]


class _Message(BaseModel):
    # Messages carry names, SDP and chat text: a validation error (which may end up in a
    # logged traceback) must not repeat them.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, hide_input_in_errors=True)


class _Request(_Message):
    id: RequestId | None = None
    """Echoed in the reply; a message without one gets no ``ack`` (errors still come)."""


# --- client -> server ------------------------------------------------------------------


class PingMessage(_Request):
    type: Literal["ping"] = "ping"


class SubscribePresenceMessage(_Request):
    type: Literal["subscribe_presence"] = "subscribe_presence"
    thread_ids: Annotated[list[EntityId], Field(max_length=MAX_PRESENCE_THREADS)]


def _accepted(value: bool) -> bool:
    if value is not True:
        raise ValueError("the recording notice must be accepted (true)")
    return value


# A strict bool that must be true: ``Literal[True]`` would let ``1`` through (1 == True).
RecordingNoticeAccepted = Annotated[bool, AfterValidator(_accepted)]
"""The person confirmed the recording notice; ``false`` or a missing field is refused."""


class StartCallMessage(_Request):
    type: Literal["start_call"] = "start_call"
    thread_id: EntityId
    recording_notice_accepted: RecordingNoticeAccepted


class AcceptCallMessage(_Request):
    type: Literal["accept_call"] = "accept_call"
    call_id: EntityId
    recording_notice_accepted: RecordingNoticeAccepted


class DeclineCallMessage(_Request):
    type: Literal["decline_call"] = "decline_call"
    call_id: EntityId


class CancelCallMessage(_Request):
    type: Literal["cancel_call"] = "cancel_call"
    call_id: EntityId


class HangUpMessage(_Request):
    type: Literal["hang_up"] = "hang_up"
    call_id: EntityId


class OfferMessage(_Request):
    """The first offer sets up the sender's leg; any later one replaces it (reconnect)."""

    type: Literal["offer"] = "offer"
    call_id: EntityId
    sdp: Sdp


class _IceCandidateFields(_Message):
    call_id: EntityId
    candidate: Candidate | None
    """``None`` or ``""``: the sender has no more candidates for this generation."""
    sdp_mid: SdpMid | None = None
    sdp_mline_index: SdpMLineIndex | None = None

    @model_validator(mode="after")
    def _candidate_has_a_media_line(self) -> Self:
        if self.candidate and self.sdp_mid is None and self.sdp_mline_index is None:
            raise ValueError("a candidate needs sdp_mid or sdp_mline_index")
        return self


class ClientIceCandidateMessage(_IceCandidateFields):
    type: Literal["ice_candidate"] = "ice_candidate"
    id: RequestId | None = None


class MediaStateMessage(_Request):
    type: Literal["media_state"] = "media_state"
    call_id: EntityId
    audio: bool
    video: bool


QualityLevel = Literal["good", "fair", "poor"]
"""Signal bars the call page measured for its own link (``getStats``: round trip, loss,
jitter, available bitrate), after its warm-up."""


class ConnectionQualityMessage(_Request):
    """The sender's own link quality, relayed to the other participant."""

    type: Literal["connection_quality"] = "connection_quality"
    call_id: EntityId
    level: QualityLevel


class ClientChatMessage(_Request):
    type: Literal["chat"] = "chat"
    call_id: EntityId
    text: ChatText


class ReportCallMessage(_Request):
    type: Literal["report_call"] = "report_call"
    call_id: EntityId
    reason: ReportReason
    details: ReportDetails | None = None


ClientMessage = Annotated[
    PingMessage
    | SubscribePresenceMessage
    | StartCallMessage
    | AcceptCallMessage
    | DeclineCallMessage
    | CancelCallMessage
    | HangUpMessage
    | OfferMessage
    | ClientIceCandidateMessage
    | MediaStateMessage
    | ConnectionQualityMessage
    | ClientChatMessage
    | ReportCallMessage,
    Field(discriminator="type"),
]


# --- server -> client ------------------------------------------------------------------


class _Reply(_Message):
    id: RequestId | None = None
    """The ``id`` of the client message this answers, or ``None``."""


class Limits(_Message):
    max_frame_bytes: int
    max_sdp_chars: int
    max_chat_text_chars: int
    max_candidate_chars: int
    rate_limit_per_second: float
    rate_limit_burst: int
    client_ping_interval_s: Seconds
    client_pong_timeout_s: Seconds
    reconnect_grace_s: Seconds
    ring_timeout_s: Seconds


class HelloMessage(_Message):
    type: Literal["hello"] = "hello"
    protocol_version: int
    connection_id: EntityId
    user_id: EntityId
    limits: Limits


class PongMessage(_Reply):
    type: Literal["pong"] = "pong"


class AckMessage(_Reply):
    type: Literal["ack"] = "ack"


class ErrorReason(_Message):
    code: EntityId
    message: ErrorText


class ErrorBody(_Message):
    code: ErrorCode
    message: ErrorText
    reasons: Annotated[list[ErrorReason], Field(max_length=32)] = []
    """Every failing eligibility rule when ``code`` is ``ineligible``; empty otherwise."""


class ErrorMessage(_Reply):
    type: Literal["error"] = "error"
    error: ErrorBody


class PresenceMessage(_Message):
    type: Literal["presence"] = "presence"
    user_id: EntityId
    online: bool


class CallStartedMessage(_Reply):
    type: Literal["call_started"] = "call_started"
    call_id: EntityId
    thread_id: EntityId
    join_url: Url
    ring_timeout_s: Seconds


class Caller(_Message):
    id: EntityId
    display_name: DisplayName


class IncomingCallMessage(_Message):
    type: Literal["incoming_call"] = "incoming_call"
    call_id: EntityId
    thread_id: EntityId
    caller: Caller
    join_url: Url
    ring_timeout_s: Seconds


class CallStateMessage(_Message):
    type: Literal["call_state"] = "call_state"
    call_id: EntityId
    state: CallPhase
    end_reason: EndReason | None = None
    ended_by: EntityId | None = None
    detail: EntityId | None = None


class AnswerMessage(_Reply):
    type: Literal["answer"] = "answer"
    call_id: EntityId
    sdp: Sdp


class ServerIceCandidateMessage(_IceCandidateFields):
    type: Literal["ice_candidate"] = "ice_candidate"


class PeerMediaStateMessage(_Message):
    type: Literal["peer_media_state"] = "peer_media_state"
    call_id: EntityId
    user_id: EntityId
    audio: bool
    video: bool


class PeerConnectionStateMessage(_Message):
    """The other participant's connection dropped (``reconnecting``: their socket closed or
    their media stopped; the call waits for them) or is back (``connected``)."""

    type: Literal["peer_connection_state"] = "peer_connection_state"
    call_id: EntityId
    user_id: EntityId
    state: Literal["connected", "reconnecting"]


class VideoPausedMessage(_Message):
    """Video to ``user_id`` is paused (``paused`` true) because their connection cannot
    carry it (``reason``), or flows again (false). Sent to both participants; audio is
    never paused."""

    type: Literal["video_paused"] = "video_paused"
    call_id: EntityId
    user_id: EntityId
    paused: bool
    reason: Literal["weak_connection"] = "weak_connection"


class CallEndingSoonMessage(_Message):
    """The call reaches its maximum length in ``seconds_left`` seconds and then ends
    (``end_reason`` ``max_length``)."""

    type: Literal["call_ending_soon"] = "call_ending_soon"
    call_id: EntityId
    seconds_left: Seconds
    max_minutes: Annotated[float, Field(gt=0, allow_inf_nan=False)]


class PeerConnectionQualityMessage(_Message):
    """The other participant's own link quality, as their page measured it."""

    type: Literal["peer_connection_quality"] = "peer_connection_quality"
    call_id: EntityId
    user_id: EntityId
    level: QualityLevel


class ChatRecord(_Message):
    id: EntityId
    sender_id: EntityId
    text: ChatText
    flags: Annotated[list[Flag], Field(max_length=MAX_FLAGS)] = []
    created_at: datetime


class ServerChatMessage(_Reply):
    type: Literal["chat"] = "chat"
    call_id: EntityId
    message: ChatRecord


class ContactDetailsWarningMessage(_Message):
    type: Literal["contact_details_warning"] = "contact_details_warning"
    call_id: EntityId
    message_id: EntityId
    message: ErrorText


ServerMessage = Annotated[
    HelloMessage
    | PongMessage
    | AckMessage
    | ErrorMessage
    | PresenceMessage
    | CallStartedMessage
    | IncomingCallMessage
    | CallStateMessage
    | AnswerMessage
    | ServerIceCandidateMessage
    | PeerMediaStateMessage
    | PeerConnectionStateMessage
    | PeerConnectionQualityMessage
    | ServerChatMessage
    | ContactDetailsWarningMessage
    | VideoPausedMessage
    | CallEndingSoonMessage,
    Field(discriminator="type"),
]

CLIENT_MESSAGE_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
SERVER_MESSAGE_ADAPTER: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)


# --- parsing ---------------------------------------------------------------------------


class ProtocolError(Exception):
    """An incoming frame that is not a valid client message; answer with ``error_from``."""

    def __init__(self, code: ErrorCode, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def parse_client_message(text: str) -> ClientMessage:
    """Parse one text frame; raises ``ProtocolError`` (never ``ValidationError``)."""
    # Read through the module so tests can patch the limit small.
    limit = ws_limits.MAX_FRAME_BYTES
    if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"a message may be at most {limit} bytes",
            _request_id_of(text),
        )
    try:
        return CLIENT_MESSAGE_ADAPTER.validate_json(text)
    except ValidationError as exc:
        code, message = _describe(exc)
        if code is ErrorCode.INVALID_JSON:
            raise ProtocolError(code, message) from None
        data = _json_object_of(text)
        if code is ErrorCode.UNKNOWN_TYPE and not isinstance(data.get("type"), str):
            # pydantic reads a non-string tag such as 5 as the tag "5".
            code, message = ErrorCode.INVALID_MESSAGE, "a message needs a string 'type'"
        raise ProtocolError(code, message, _request_id_in(data)) from None


def parse_server_message(text: str | bytes) -> ServerMessage:
    """For clients and tests; raises ``pydantic.ValidationError``."""
    return SERVER_MESSAGE_ADAPTER.validate_json(text)


def dump_message(message: BaseModel) -> str:
    """The JSON text of a message; fields set to ``None`` are sent as ``null``."""
    return message.model_dump_json()


def request_id_of(text: str) -> int | None:
    """The usable request ``id`` of a frame that is not parsed (rate-limited), or ``None``."""
    return _request_id_in(_json_object_of(text))


_request_id_of = request_id_of


def _json_object_of(text: str) -> dict[str, Any]:
    """The frame as a JSON object, or ``{}``; only used on the (rare) error path."""
    try:
        data: Any = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _request_id_in(data: dict[str, Any]) -> int | None:
    """The ``id`` to echo from a message that failed validation, if it is a usable one."""
    candidate = data.get("id")
    if type(candidate) is int and 0 <= candidate <= MAX_REQUEST_ID:
        return candidate
    return None


def _describe(exc: ValidationError) -> tuple[ErrorCode, str]:
    errors = exc.errors(include_url=False, include_input=False, include_context=True)
    kinds = {e["type"] for e in errors}
    if "json_invalid" in kinds:
        return ErrorCode.INVALID_JSON, "the frame is not valid JSON"
    if "union_tag_invalid" in kinds:
        tag = str(errors[0].get("ctx", {}).get("tag", ""))[:64]
        return ErrorCode.UNKNOWN_TYPE, f"unknown message type {tag!r}"
    if "union_tag_not_found" in kinds:
        return ErrorCode.INVALID_MESSAGE, "a message needs a string 'type'"
    if kinds & {"model_attributes_type", "dict_type", "model_type"} and all(
        not e["loc"] for e in errors
    ):
        return ErrorCode.INVALID_MESSAGE, "a message is a JSON object"
    parts = []
    for e in errors[:3]:
        # loc starts with the union tag ("chat", "text"); the tag is noise to the reader.
        field = ".".join(str(x) for x in e["loc"][1:]) or "message"
        parts.append(f"{field}: {e['msg']}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return ErrorCode.INVALID_MESSAGE, "; ".join(parts) + more


# --- builders --------------------------------------------------------------------------


def error_message(
    code: ErrorCode,
    message: str,
    id: int | None = None,
    reasons: Iterable[tuple[str, str]] = (),
) -> ErrorMessage:
    """An ``error`` reply; ``reasons`` are (code, message) pairs for ``ineligible``."""
    return ErrorMessage(
        id=id,
        error=ErrorBody(
            code=code,
            message=message[:MAX_ERROR_MESSAGE_CHARS],
            reasons=[ErrorReason(code=c, message=m[:MAX_ERROR_MESSAGE_CHARS]) for c, m in reasons],
        ),
    )


def error_from(exc: ProtocolError) -> ErrorMessage:
    return error_message(exc.code, exc.message, exc.request_id)


def error_code_for(exc: CallStateError) -> ErrorCode:
    """The reply code for an input the call state machine refused.

    A stranger gets ``not_found`` so a call id does not reveal that the call exists.
    """
    if isinstance(exc, NotACallParticipant):
        return ErrorCode.NOT_FOUND
    if exc.phase is CallPhase.ENDED:
        return ErrorCode.CALL_NOT_LIVE
    return ErrorCode.NOT_ALLOWED


def ack_message(id: int | None) -> AckMessage:
    return AckMessage(id=id)


def pong_message(id: int | None) -> PongMessage:
    return PongMessage(id=id)


def hello_message(
    *,
    connection_id: str,
    user_id: str,
    ring_timeout_s: float,
    reconnect_grace_s: float,
) -> HelloMessage:
    """The first message on every connection; limits read from ``ws_limits`` at call time."""
    return HelloMessage(
        protocol_version=PROTOCOL_VERSION,
        connection_id=connection_id,
        user_id=user_id,
        limits=Limits(
            max_frame_bytes=ws_limits.MAX_FRAME_BYTES,
            max_sdp_chars=ws_limits.MAX_SDP_CHARS,
            max_chat_text_chars=ws_limits.MAX_CHAT_TEXT_CHARS,
            max_candidate_chars=ws_limits.MAX_CANDIDATE_CHARS,
            rate_limit_per_second=ws_limits.RATE_LIMIT_PER_SECOND,
            rate_limit_burst=ws_limits.RATE_LIMIT_BURST,
            client_ping_interval_s=ws_limits.CLIENT_PING_INTERVAL_SECONDS,
            client_pong_timeout_s=ws_limits.CLIENT_PONG_TIMEOUT_SECONDS,
            reconnect_grace_s=reconnect_grace_s,
            ring_timeout_s=ring_timeout_s,
        ),
    )


def presence_message(user_id: str, online: bool) -> PresenceMessage:
    return PresenceMessage(user_id=user_id, online=online)


def call_state_message(state: CallState) -> CallStateMessage:
    """What both participants (every connection of each) are told after a phase change."""
    end = state.end
    return CallStateMessage(
        call_id=state.call_id,
        state=state.phase,
        end_reason=end.reason if end else None,
        ended_by=end.by if end else None,
        detail=end.detail if end else None,
    )


def call_ending_soon_message(state: CallState, ending: CallEndingSoon) -> CallEndingSoonMessage:
    return CallEndingSoonMessage(
        call_id=ending.call_id,
        seconds_left=round(ending.seconds_left, 3),
        max_minutes=state.timeouts.max_length.total_seconds() / 60,
    )


def chat_message(
    *,
    call_id: str,
    message_id: str,
    sender_id: str,
    text: str,
    flags: Iterable[str],
    created_at: datetime,
    id: int | None = None,
) -> ServerChatMessage:
    """The chat message as stored, to both participants (``id`` only in the sender's copy)."""
    return ServerChatMessage(
        id=id,
        call_id=call_id,
        message=ChatRecord(
            id=message_id, sender_id=sender_id, text=text, flags=list(flags), created_at=created_at
        ),
    )
