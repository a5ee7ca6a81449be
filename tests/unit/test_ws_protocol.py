"""The WebSocket vocabulary: round trips, rejections, builders, limits and the docs."""

from __future__ import annotations

import json
import re
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from signaling import ws_limits
from signaling.call_state import (
    Accept,
    CallActionNotAllowed,
    CallEndingSoon,
    CallPhase,
    CallStateError,
    Decline,
    EndReason,
    HangUp,
    IllegalCallTransition,
    NotACallParticipant,
    advance,
    start_call,
)
from signaling.ws_limits import CloseCode, MessageRateLimiter
from signaling.ws_protocol import (
    AcceptCallMessage,
    AnswerMessage,
    Caller,
    CallStartedMessage,
    CallStateMessage,
    CancelCallMessage,
    ClientChatMessage,
    ClientIceCandidateMessage,
    ClientMessage,
    ConnectionQualityMessage,
    ContactDetailsWarningMessage,
    DeclineCallMessage,
    ErrorCode,
    ErrorMessage,
    HangUpMessage,
    IncomingCallMessage,
    MediaStateMessage,
    OfferMessage,
    PeerConnectionQualityMessage,
    PeerConnectionStateMessage,
    PeerMediaStateMessage,
    PingMessage,
    ProtocolError,
    ReportCallMessage,
    ReportReason,
    ServerIceCandidateMessage,
    ServerMessage,
    StartCallMessage,
    SubscribePresenceMessage,
    VideoPausedMessage,
    ack_message,
    call_ending_soon_message,
    call_state_message,
    chat_message,
    dump_message,
    error_code_for,
    error_from,
    error_message,
    hello_message,
    parse_client_message,
    parse_server_message,
    pong_message,
    presence_message,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "websocket-protocol.md"
DASH = "\N{EN DASH}"  # the docs write ranges with it: "1-128" with an en dash
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CANDIDATE = "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host"


def union_tags(union: object) -> set[str]:
    members = typing.get_args(typing.get_args(union)[0])
    return {m.model_fields["type"].default for m in members}


CLIENT_SAMPLES: list[BaseModel] = [
    PingMessage(),
    PingMessage(id=0),
    PingMessage(id=ws_limits.MAX_REQUEST_ID),
    SubscribePresenceMessage(id=1, thread_ids=["t-1", "t-2"]),
    SubscribePresenceMessage(thread_ids=[]),
    StartCallMessage(id=2, thread_id="t-1", recording_notice_accepted=True),
    AcceptCallMessage(id=3, call_id="c-1", recording_notice_accepted=True),
    DeclineCallMessage(call_id="c-1"),
    CancelCallMessage(id=4, call_id="c-1"),
    HangUpMessage(id=5, call_id="c-1"),
    OfferMessage(id=6, call_id="c-1", sdp=SDP),
    ClientIceCandidateMessage(call_id="c-1", candidate=CANDIDATE, sdp_mid="0", sdp_mline_index=0),
    ClientIceCandidateMessage(call_id="c-1", candidate=CANDIDATE, sdp_mid="0"),
    ClientIceCandidateMessage(call_id="c-1", candidate=None),
    ClientIceCandidateMessage(id=7, call_id="c-1", candidate=""),
    MediaStateMessage(id=8, call_id="c-1", audio=False, video=True),
    ConnectionQualityMessage(id=11, call_id="c-1", level="fair"),
    ConnectionQualityMessage(call_id="c-1", level="good"),
    ClientChatMessage(id=9, call_id="c-1", text="hello 👋"),
    ReportCallMessage(id=10, call_id="c-1", reason=ReportReason.OFF_PLATFORM_CONTACT),
    ReportCallMessage(call_id="c-1", reason=ReportReason.OTHER, details="asked for my phone"),
]


def server_samples() -> list[BaseModel]:
    live = start_call(call_id="c-1", thread_id="t-1", seller_id="s-1", buyer_id="b-1", now=T0)
    ended = advance(live.state, Decline("b-1"), T0 + timedelta(seconds=3)).state
    return [
        hello_message(
            connection_id="conn-1", user_id="s-1", ring_timeout_s=45.0, reconnect_grace_s=20.0
        ),
        pong_message(1),
        pong_message(None),
        ack_message(2),
        error_message(ErrorCode.INVALID_JSON, "the frame is not valid JSON"),
        error_message(
            ErrorCode.INELIGIBLE,
            "not allowed",
            3,
            reasons=[("thread_has_order", "an order exists"), ("buyer_not_vid", "not VID")],
        ),
        presence_message("b-1", online=True),
        CallStartedMessage(
            id=4,
            call_id="c-1",
            thread_id="t-1",
            join_url="https://calls.example.com/join/c-1",
            ring_timeout_s=45.0,
        ),
        IncomingCallMessage(
            call_id="c-1",
            thread_id="t-1",
            caller=Caller(id="s-1", display_name="Ana Lúcia"),
            join_url="https://calls.example.com/join/c-1",
            ring_timeout_s=45.0,
        ),
        call_state_message(live.state),
        call_state_message(ended),
        AnswerMessage(id=5, call_id="c-1", sdp=SDP),
        ServerIceCandidateMessage(
            call_id="c-1", candidate=CANDIDATE, sdp_mid="0", sdp_mline_index=0
        ),
        ServerIceCandidateMessage(call_id="c-1", candidate=None),
        PeerMediaStateMessage(call_id="c-1", user_id="b-1", audio=True, video=False),
        PeerConnectionQualityMessage(call_id="c-1", user_id="b-1", level="poor"),
        PeerConnectionStateMessage(call_id="c-1", user_id="b-1", state="reconnecting"),
        chat_message(
            id=6,
            call_id="c-1",
            message_id="m-1",
            sender_id="s-1",
            text="call me at …",
            flags=["contact_details"],
            created_at=T0,
        ),
        ContactDetailsWarningMessage(
            call_id="c-1", message_id="m-1", message="Sharing contact details breaks the rules."
        ),
        PeerConnectionStateMessage(call_id="c-1", user_id="b-1", state="reconnecting"),
        VideoPausedMessage(call_id="c-1", user_id="b-1", paused=True),
        call_ending_soon_message(live.state, CallEndingSoon("c-1", T0, T0 + timedelta(seconds=60))),
    ]


# --- round trips -----------------------------------------------------------------------


def test_samples_cover_every_message_type() -> None:
    assert {m.model_dump()["type"] for m in CLIENT_SAMPLES} == union_tags(ClientMessage)
    assert {m.model_dump()["type"] for m in server_samples()} == union_tags(ServerMessage)


@pytest.mark.parametrize("message", CLIENT_SAMPLES, ids=lambda m: m.model_dump()["type"])
def test_client_messages_round_trip(message: BaseModel) -> None:
    text = dump_message(message)
    parsed = parse_client_message(text)
    assert parsed == message
    assert type(parsed) is type(message)


@pytest.mark.parametrize("message", server_samples(), ids=lambda m: m.model_dump()["type"])
def test_server_messages_round_trip(message: BaseModel) -> None:
    text = dump_message(message)
    parsed = parse_server_message(text)
    assert parsed == message
    assert type(parsed) is type(message)


def test_client_message_without_optional_fields_parses() -> None:
    parsed = parse_client_message('{"type":"ice_candidate","call_id":"c-1","candidate":null}')
    assert isinstance(parsed, ClientIceCandidateMessage)
    assert parsed.id is None and parsed.sdp_mid is None


def test_server_sends_every_field_including_nulls() -> None:
    live = start_call(call_id="c-1", thread_id="t-1", seller_id="s-1", buyer_id="b-1", now=T0)
    assert json.loads(dump_message(call_state_message(live.state))) == {
        "type": "call_state",
        "call_id": "c-1",
        "state": "ringing",
        "end_reason": None,
        "ended_by": None,
        "detail": None,
    }


# --- rejections ------------------------------------------------------------------------


def rejected(text: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(text)
    return info.value


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{", ErrorCode.INVALID_JSON),
        ("", ErrorCode.INVALID_JSON),
        ('{"type": "ping"', ErrorCode.INVALID_JSON),
        ("[]", ErrorCode.INVALID_MESSAGE),
        ("1", ErrorCode.INVALID_MESSAGE),
        ("null", ErrorCode.INVALID_MESSAGE),
        ('"ping"', ErrorCode.INVALID_MESSAGE),
        ("{}", ErrorCode.INVALID_MESSAGE),
        ('{"type": 5}', ErrorCode.INVALID_MESSAGE),
        ('{"type": null}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "nope"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "PING"}', ErrorCode.UNKNOWN_TYPE),
        # server -> client types are not client messages
        ('{"type": "pong"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "call_state", "call_id": "c", "state": "ended"}', ErrorCode.UNKNOWN_TYPE),
    ],
)
def test_malformed_frames(text: str, code: ErrorCode) -> None:
    assert rejected(text).code is code


def test_unknown_type_names_it() -> None:
    error = rejected('{"type": "nope", "id": 4}')
    assert error.message == "unknown message type 'nope'"
    assert error.request_id == 4


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "ping", "extra": 1}',
        '{"type": "start_call", "thread_id": "t", "call_id": "c"}',
        '{"type": "media_state", "call_id": "c", "audio": true, "video": true, "x": null}',
        '{"type": "report_call", "call_id": "c", "reason": "other", "Details": "x"}',
    ],
)
def test_extra_fields_are_rejected(text: str) -> None:
    error = rejected(text)
    assert error.code is ErrorCode.INVALID_MESSAGE
    assert "Extra inputs are not permitted" in error.message


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "ping", "id": "1"}',
        '{"type": "ping", "id": 1.0}',
        '{"type": "ping", "id": true}',
        '{"type": "ping", "id": -1}',
        '{"type": "ping", "id": 9007199254740992}',
        '{"type": "start_call", "thread_id": 17}',
        '{"type": "start_call"}',
        '{"type": "start_call", "thread_id": null}',
        '{"type": "accept_call", "call_id": ["c"]}',
        '{"type": "start_call", "thread_id": "t", "recording_notice_accepted": false}',
        '{"type": "start_call", "thread_id": "t", "recording_notice_accepted": 1}',
        '{"type": "accept_call", "call_id": "c"}',
        '{"type": "accept_call", "call_id": "c", "recording_notice_accepted": "true"}',
        '{"type": "media_state", "call_id": "c", "audio": 1, "video": true}',
        '{"type": "media_state", "call_id": "c", "audio": "true", "video": true}',
        '{"type": "media_state", "call_id": "c", "audio": true}',
        '{"type": "connection_quality", "call_id": "c", "level": "excellent"}',
        '{"type": "connection_quality", "call_id": "c", "level": 3}',
        '{"type": "connection_quality", "call_id": "c"}',
        '{"type": "subscribe_presence", "thread_ids": "t-1"}',
        '{"type": "subscribe_presence", "thread_ids": [1]}',
        '{"type": "ice_candidate", "call_id": "c", "candidate": "x", "sdp_mline_index": "0"}',
        '{"type": "ice_candidate", "call_id": "c", "candidate": "x", "sdp_mline_index": -1}',
        '{"type": "ice_candidate", "call_id": "c", "candidate": "x", "sdp_mline_index": 256}',
        '{"type": "ice_candidate", "call_id": "c", "candidate": "candidate:1"}',
        '{"type": "ice_candidate", "call_id": "c"}',
        '{"type": "report_call", "call_id": "c", "reason": "rude"}',
        '{"type": "report_call", "call_id": "c", "reason": "other", "details": "  "}',
        '{"type": "chat", "call_id": "c", "text": ""}',
        '{"type": "chat", "call_id": "c", "text": " \\n\\t "}',
        '{"type": "offer", "call_id": "c", "sdp": ""}',
        '{"type": "hang_up", "call_id": ""}',
        '{"type": "hang_up", "call_id": "has space"}',
        '{"type": "hang_up", "call_id": "tab\\there"}',
        '{"type": "hang_up", "call_id": "ünïcode"}',
    ],
)
def test_wrong_types_and_values_are_rejected(text: str) -> None:
    assert rejected(text).code is ErrorCode.INVALID_MESSAGE


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "offer", "call_id": "c", "sdp": "v" * (ws_limits.MAX_SDP_CHARS + 1)}, "sdp"),
        (
            {"type": "chat", "call_id": "c", "text": "a" * (ws_limits.MAX_CHAT_TEXT_CHARS + 1)},
            "text",
        ),
        (
            {
                "type": "ice_candidate",
                "call_id": "c",
                "candidate": "c" * (ws_limits.MAX_CANDIDATE_CHARS + 1),
                "sdp_mid": "0",
            },
            "candidate",
        ),
        (
            {
                "type": "ice_candidate",
                "call_id": "c",
                "candidate": "c",
                "sdp_mid": "m" * (ws_limits.MAX_SDP_MID_CHARS + 1),
            },
            "sdp_mid",
        ),
        ({"type": "hang_up", "call_id": "c" * (ws_limits.MAX_ID_CHARS + 1)}, "call_id"),
        (
            {
                "type": "subscribe_presence",
                "thread_ids": [f"t{i}" for i in range(ws_limits.MAX_PRESENCE_THREADS + 1)],
            },
            "thread_ids",
        ),
        (
            {
                "type": "report_call",
                "call_id": "c",
                "reason": "other",
                "details": "d" * (ws_limits.MAX_REPORT_DETAILS_CHARS + 1),
            },
            "details",
        ),
    ],
    ids=["sdp", "chat", "candidate", "sdp_mid", "id", "thread_ids", "details"],
)
def test_oversize_fields_are_rejected(message: dict[str, Any], field: str) -> None:
    error = rejected(json.dumps(message | {"id": 11}))
    assert error.code is ErrorCode.INVALID_MESSAGE
    assert error.message.startswith(f"{field}:")
    assert error.request_id == 11


@pytest.mark.parametrize(
    "message",
    [
        {"type": "offer", "call_id": "c", "sdp": "v" * ws_limits.MAX_SDP_CHARS},
        {"type": "chat", "call_id": "c", "text": "a" * ws_limits.MAX_CHAT_TEXT_CHARS},
        {"type": "hang_up", "call_id": "c" * ws_limits.MAX_ID_CHARS},
        {"type": "subscribe_presence", "thread_ids": ["t"] * ws_limits.MAX_PRESENCE_THREADS},
    ],
)
def test_fields_at_their_limit_are_accepted(message: dict[str, Any]) -> None:
    parse_client_message(json.dumps(message))


def test_frame_over_the_limit_is_too_large() -> None:
    text = json.dumps({"type": "chat", "id": 12, "call_id": "c", "text": "x" * 10})
    text = text[:-1] + " " * ws_limits.MAX_FRAME_BYTES + "}"
    error = rejected(text)
    assert error.code is ErrorCode.MESSAGE_TOO_LARGE
    assert error.request_id == 12


def test_frame_limit_counts_utf8_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_limits, "MAX_FRAME_BYTES", 100)
    text = json.dumps({"type": "chat", "call_id": "c", "text": "€" * 30}, ensure_ascii=False)
    assert len(text) < 100 < len(text.encode())
    assert rejected(text).code is ErrorCode.MESSAGE_TOO_LARGE
    assert isinstance(parse_client_message('{"type": "ping"}'), PingMessage)


@pytest.mark.parametrize(
    ("text", "request_id"),
    [
        ('{"type": "nope", "id": 5}', 5),
        ('{"type": "hang_up", "id": 6}', 6),
        ('{"type": "hang_up", "id": "6"}', None),
        ('{"type": "hang_up", "id": true}', None),
        ('{"type": "hang_up", "id": -3}', None),
        ('{"type": "hang_up", "id": 1e3}', None),
        ('{"id": 9}', 9),
        ('{"type": "ping", "id": 7', None),
    ],
)
def test_errors_echo_a_usable_request_id(text: str, request_id: int | None) -> None:
    assert rejected(text).request_id == request_id


def test_error_messages_do_not_echo_the_input() -> None:
    secret = "whatsapp-plus-1-555-0100"
    error = rejected(json.dumps({"type": "chat", "call_id": "c", "text": secret, "x": secret}))
    assert secret not in error.message


def test_parse_server_message_rejects_what_is_not_a_server_message() -> None:
    with pytest.raises(ValidationError):
        parse_server_message('{"type": "start_call", "thread_id": "t"}')
    with pytest.raises(ValidationError):
        parse_server_message('{"type": "presence", "user_id": "u", "online": true, "x": 1}')


# --- builders --------------------------------------------------------------------------


def test_error_reply_shape() -> None:
    reply = error_message(ErrorCode.RATE_LIMITED, "slow down", 42)
    assert json.loads(dump_message(reply)) == {
        "type": "error",
        "id": 42,
        "error": {"code": "rate_limited", "message": "slow down", "reasons": []},
    }
    assert json.loads(dump_message(error_message(ErrorCode.INTERNAL_ERROR, "x")))["id"] is None


def test_error_from_protocol_error() -> None:
    reply = error_from(rejected('{"type": "nope", "id": 3}'))
    assert isinstance(reply, ErrorMessage)
    assert reply.id == 3
    assert reply.error.code is ErrorCode.UNKNOWN_TYPE


def test_error_message_is_bounded() -> None:
    reply = error_message(ErrorCode.INTERNAL_ERROR, "x" * 10_000)
    assert len(reply.error.message) == ws_limits.MAX_ERROR_MESSAGE_CHARS


def test_ineligible_error_lists_every_reason() -> None:
    reply = error_message(
        ErrorCode.INELIGIBLE, "no", 1, reasons=[("thread_has_order", "a"), ("rate_limited", "b")]
    )
    assert [r.code for r in reply.error.reasons] == ["thread_has_order", "rate_limited"]


def test_call_state_message_carries_the_end() -> None:
    live = start_call(call_id="c-1", thread_id="t-1", seller_id="s-1", buyer_id="b-1", now=T0)
    accepted = advance(live.state, Accept("b-1"), T0 + timedelta(seconds=1)).state
    assert call_state_message(accepted) == CallStateMessage(
        call_id="c-1", state=CallPhase.CONNECTING
    )
    ended = advance(accepted, HangUp("b-1"), T0 + timedelta(seconds=9)).state
    assert call_state_message(ended) == CallStateMessage(
        call_id="c-1", state=CallPhase.ENDED, end_reason=EndReason.HUNG_UP, ended_by="b-1"
    )


def test_hello_reads_the_limits_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_limits, "MAX_FRAME_BYTES", 1000)
    hello = hello_message(
        connection_id="conn", user_id="u", ring_timeout_s=10.0, reconnect_grace_s=5.0
    )
    assert hello.protocol_version == ws_limits.PROTOCOL_VERSION
    assert hello.limits.max_frame_bytes == 1000
    assert hello.limits.ring_timeout_s == 10.0
    assert hello.limits.reconnect_grace_s == 5.0
    assert hello.limits.rate_limit_burst == ws_limits.RATE_LIMIT_BURST


def test_chat_message_builder() -> None:
    msg = chat_message(
        call_id="c", message_id="m", sender_id="s", text="hi", flags=(), created_at=T0
    )
    data = json.loads(dump_message(msg))
    assert data == {
        "type": "chat",
        "id": None,
        "call_id": "c",
        "message": {
            "id": "m",
            "sender_id": "s",
            "text": "hi",
            "flags": [],
            "created_at": "2026-03-01T12:00:00Z",
        },
    }


def _refusal(make: typing.Callable[[], object]) -> CallStateError:
    with pytest.raises(CallStateError) as info:
        make()
    return info.value


def test_error_code_for_call_state_errors() -> None:
    live = start_call(call_id="c", thread_id="t", seller_id="s", buyer_id="b", now=T0).state
    ended = advance(live, Decline("b"), T0).state
    not_live = _refusal(lambda: advance(ended, Accept("b"), T0))
    assert isinstance(not_live, IllegalCallTransition)
    assert error_code_for(not_live) is ErrorCode.CALL_NOT_LIVE
    wrong_phase = _refusal(lambda: advance(live, HangUp("s"), T0))
    assert error_code_for(wrong_phase) is ErrorCode.NOT_ALLOWED
    wrong_role = _refusal(lambda: advance(live, Accept("s"), T0))
    assert isinstance(wrong_role, CallActionNotAllowed)
    assert error_code_for(wrong_role) is ErrorCode.NOT_ALLOWED
    stranger = _refusal(lambda: advance(ended, Accept("x"), T0))
    assert isinstance(stranger, NotACallParticipant)
    assert error_code_for(stranger) is ErrorCode.NOT_FOUND


# --- rate limiter ----------------------------------------------------------------------


def test_rate_limiter_allows_a_burst_then_the_rate() -> None:
    limiter = MessageRateLimiter(rate_per_second=10.0, burst=5, strikes_before_close=3)
    assert all(limiter.allow(0.0) for _ in range(5))
    assert not limiter.allow(0.0)
    assert limiter.allow(0.1)  # one token back after 1/10 s
    assert not limiter.allow(0.1)
    assert not limiter.allow(0.1)
    assert not limiter.should_close
    assert not limiter.allow(0.1)
    assert limiter.should_close
    assert all(limiter.allow(10.0) for _ in range(5))  # refills only up to the burst
    assert not limiter.allow(10.0)
    assert not limiter.should_close


def test_rate_limiter_defaults_match_the_limits() -> None:
    limiter = MessageRateLimiter()
    allowed = sum(limiter.allow(0.0) for _ in range(ws_limits.RATE_LIMIT_BURST + 10))
    assert allowed == ws_limits.RATE_LIMIT_BURST


def test_rate_limiter_ignores_a_clock_going_backwards() -> None:
    limiter = MessageRateLimiter(rate_per_second=1.0, burst=1)
    assert limiter.allow(100.0)
    assert not limiter.allow(50.0)


# --- docs ------------------------------------------------------------------------------


def docs_section(title: str) -> str:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


@pytest.mark.parametrize("tag", sorted(union_tags(ClientMessage)))
def test_every_client_message_is_documented(tag: str) -> None:
    assert re.search(rf"^### `{tag}`", docs_section("Client → server messages"), re.M)


@pytest.mark.parametrize("tag", sorted(union_tags(ServerMessage)))
def test_every_server_message_is_documented(tag: str) -> None:
    assert re.search(rf"^### `{tag}`", docs_section("Server → client messages"), re.M)


def test_docs_document_no_message_that_does_not_exist() -> None:
    client = set(re.findall(r"^### `(\w+)`", docs_section("Client → server messages"), re.M))
    server = set(re.findall(r"^### `(\w+)`", docs_section("Server → client messages"), re.M))
    assert client == union_tags(ClientMessage)
    assert server == union_tags(ServerMessage)


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_is_documented(code: ErrorCode) -> None:
    assert f"| `{code.value}` |" in docs_section("Requests, replies and errors")


@pytest.mark.parametrize("code", list(CloseCode))
def test_every_close_code_is_documented(code: CloseCode) -> None:
    assert f"| `{code.value}` |" in docs_section("Close codes")


@pytest.mark.parametrize("reason", list(EndReason))
def test_every_end_reason_is_documented(reason: EndReason) -> None:
    assert f"| `{reason.value}` |" in docs_section("The order of a call")


@pytest.mark.parametrize("reason", list(ReportReason))
def test_every_report_reason_is_documented(reason: ReportReason) -> None:
    assert f"`{reason.value}`" in docs_section("Client → server messages")


@pytest.mark.parametrize(
    "fact",
    [
        f"`{ws_limits.WS_PATH}`",
        f"{ws_limits.MAX_FRAME_BYTES} bytes",
        f"{ws_limits.TRANSPORT_MAX_FRAME_BYTES} bytes",
        f"{ws_limits.MAX_SDP_CHARS} characters",
        f"{ws_limits.MAX_CANDIDATE_CHARS} characters",
        f"1{DASH}{ws_limits.MAX_CHAT_TEXT_CHARS} characters",
        f"{ws_limits.MAX_REPORT_DETAILS_CHARS} characters",
        f"1{DASH}{ws_limits.MAX_ID_CHARS} printable ASCII",
        f"0{DASH}{ws_limits.MAX_REQUEST_ID}",
        f"0{DASH}{ws_limits.MAX_SDP_MLINE_INDEX}",
        f"up to {ws_limits.MAX_PRESENCE_THREADS} ids",
        f"{ws_limits.RATE_LIMIT_PER_SECOND:g} messages/s, burst {ws_limits.RATE_LIMIT_BURST}",
        f"{ws_limits.RATE_LIMIT_STRIKES_BEFORE_CLOSE} rate-limited messages in a row",
        f"{ws_limits.OUTBOUND_QUEUE_MAX} messages waiting",
        f"more than {ws_limits.OUTBOUND_QUEUE_PEAK} waiting for "
        f"{ws_limits.OUTBOUND_QUEUE_PEAK_SECONDS:g} s",
        f"ping every {ws_limits.HEARTBEAT_INTERVAL_SECONDS:g} s; no pong within "
        f"{ws_limits.HEARTBEAT_TIMEOUT_SECONDS:g} s",
        f"send `ping` every {ws_limits.CLIENT_PING_INTERVAL_SECONDS:g} s while idle; no `pong` "
        f"within {ws_limits.CLIENT_PONG_TIMEOUT_SECONDS:g} s",
        f"{ws_limits.HANDSHAKE_TIMEOUT_SECONDS:g} s from the upgrade request",
        f"waits {ws_limits.CLOSE_TIMEOUT_SECONDS:g} s",
        f"| sockets per user | {ws_limits.MAX_CONNECTIONS_PER_USER} |",
        f"Protocol version: **{ws_limits.PROTOCOL_VERSION}**",
    ],
)
def test_docs_quote_the_limits(fact: str) -> None:
    assert fact in DOCS.read_text(encoding="utf-8")


def test_docs_quote_the_call_timeouts() -> None:
    from signaling.call_state import CallTimeouts

    text = DOCS.read_text(encoding="utf-8")
    timeouts = CallTimeouts()
    assert f"{timeouts.ring.total_seconds():g} s by default" in text
    assert f"{timeouts.reconnect_grace.total_seconds():g} s by default" in text
    assert f"{timeouts.connect.total_seconds():g} s from accept" in text


def test_docs_example_parses() -> None:
    example = docs_section("Example")
    lines = [line for line in example.splitlines() if "{" in line]
    assert lines
    for line in lines:
        direction, _, payload = line.partition(" ")
        payload = payload.strip()
        if payload.startswith("→"):
            direction, payload = direction + " →", payload[1:].strip()
        elif payload.startswith("←"):
            direction, payload = direction + " ←", payload[1:].strip()
        if "→" in direction:
            parse_client_message(payload)
        else:
            parse_server_message(payload)
