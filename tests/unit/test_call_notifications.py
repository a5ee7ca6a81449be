"""The call core's notifications in wire form: each one a valid server message, the same
one whichever part of the core (or the reaper) sends it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from server.calls.notifications import (
    CONTACT_DETAILS_WARNING,
    CallNotification,
    CallStarted,
    CallStateChanged,
    ChatMessagePosted,
    ContactDetailsWarning,
    IncomingCall,
    PeerConnectionState,
    PeerMediaState,
    chat_replies,
    wire_message,
)
from signaling import ws_limits
from signaling.call_state import (
    CallEnd,
    CallPhase,
    Cancel,
    EndReason,
    FailureDetail,
    advance,
    start_call,
)
from signaling.ws_protocol import (
    call_state_message,
    dump_message,
    parse_server_message,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POSTED = ChatMessagePosted("c-1", "m-1", "s-1", "hello", (), T0)

SAMPLES: list[tuple[CallNotification, str]] = [
    (CallStateChanged("c-1", CallPhase.RINGING), "call_state"),
    (CallStarted("c-1", "t-1", "https://x.example/join/c-1", 45.0), "call_started"),
    (IncomingCall("c-1", "t-1", "s-1", "Ana", "https://x.example/join/c-1", 45.0), "incoming_call"),
    (PeerMediaState("c-1", "b-1", audio=True, video=False), "peer_media_state"),
    (PeerConnectionState("c-1", "b-1", reconnecting=True), "peer_connection_state"),
    (POSTED, "chat"),
    (ContactDetailsWarning("c-1", "m-1"), "contact_details_warning"),
]


@pytest.mark.parametrize(("notification", "wire_type"), SAMPLES, ids=[t for _, t in SAMPLES])
def test_every_notification_is_a_server_message(
    notification: CallNotification, wire_type: str
) -> None:
    message = wire_message(notification)
    assert message.model_dump()["type"] == wire_type
    parsed: BaseModel = parse_server_message(dump_message(message))
    assert parsed == message


@pytest.mark.parametrize("ended", [False, True], ids=["ringing", "ended"])
def test_call_state_changed_matches_the_protocols_call_state(ended: bool) -> None:
    state = start_call(
        call_id="c-1", thread_id="t-1", seller_id="s-1", buyer_id="b-1", now=T0
    ).state
    if ended:
        state = advance(state, Cancel("s-1"), T0).state
    assert wire_message(CallStateChanged.of(state)) == call_state_message(state)


def test_a_call_ended_elsewhere_reads_like_any_end() -> None:
    end = CallEnd(EndReason.FAILED, T0, detail=FailureDetail.NODE_LOST.value)
    assert json.loads(
        dump_message(wire_message(CallStateChanged("c-1", CallPhase.ENDED, end)))
    ) == {
        "type": "call_state",
        "call_id": "c-1",
        "state": "ended",
        "end_reason": "failed",
        "ended_by": None,
        "detail": "node_lost",
    }


def test_peer_connection_state_says_connected_when_back() -> None:
    message = wire_message(PeerConnectionState("c-1", "b-1", reconnecting=False))
    assert message.model_dump()["state"] == "connected"


def test_the_caller_name_is_cut_to_the_wire_limit() -> None:
    long_name = "A" * (ws_limits.MAX_DISPLAY_NAME_CHARS + 10)
    message = wire_message(IncomingCall("c-1", "t-1", "s-1", long_name, "https://x/j", 45.0))
    assert message.model_dump()["caller"]["display_name"] == "A" * ws_limits.MAX_DISPLAY_NAME_CHARS


def test_a_chat_reply_carries_the_request_id_and_a_warning_only_when_flagged() -> None:
    plain = chat_replies(POSTED, 7)
    assert [m.model_dump()["type"] for m in plain] == ["chat"]
    assert plain[0].model_dump()["id"] == 7
    flagged = ChatMessagePosted("c-1", "m-2", "s-1", "mail me", ("contact_details",), T0)
    replies = chat_replies(flagged, 8)
    assert [m.model_dump()["type"] for m in replies] == ["chat", "contact_details_warning"]
    assert replies[1].model_dump()["message"] == CONTACT_DETAILS_WARNING
