"""The call state machine: every transition, end reason, illegal move and deadline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from signaling.call_state import (
    Accept,
    CallActionNotAllowed,
    CallEnd,
    CallEvent,
    CallEventKind,
    CallInput,
    CallPhase,
    CallState,
    CallTimeouts,
    CallTransition,
    Cancel,
    ChatPosted,
    Deadline,
    DeadlineKind,
    DeadlinesDue,
    Decline,
    EligibilityLost,
    EndReason,
    FailureDetail,
    HangUp,
    IllegalCallTransition,
    LegState,
    LegStateChanged,
    MediaStateChanged,
    MediaUnavailable,
    NotACallParticipant,
    PhaseChanged,
    Reported,
    ServerShutdown,
    SocketAttached,
    SocketClosed,
    advance,
    start_call,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
MakeState = Callable[[], CallState]

SELLER = "seller-1"
BUYER = "buyer-1"
STRANGER = "someone-else"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ringing(timeouts: CallTimeouts | None = None) -> CallState:
    return start_call(
        call_id="call-1",
        thread_id="thread-1",
        seller_id=SELLER,
        buyer_id=BUYER,
        now=T0,
        timeouts=timeouts,
    ).state


def connected(user_id: str) -> LegStateChanged:
    return LegStateChanged(user_id, LegState.CONNECTED)


def connecting() -> CallState:
    return advance(ringing(), Accept(BUYER), at(5)).state


def active() -> CallState:
    state = advance(connecting(), connected(SELLER), at(6)).state
    return advance(state, connected(BUYER), at(7)).state


def kinds(t: CallTransition) -> list[tuple[CallEventKind, str]]:
    return [(e.kind, e.user_id) for e in t.events]


def ended(t: CallTransition) -> CallEnd:
    assert t.state.phase is CallPhase.ENDED
    change = t.phase_change
    assert change is not None
    assert change.phase is CallPhase.ENDED
    assert change.end == t.state.end
    assert t.state.end is not None
    assert not t.state.is_live
    assert t.state.deadlines() == ()
    return t.state.end


# --- start and the happy path ----------------------------------------------------------


def test_start_call_rings_with_the_seller_joined() -> None:
    t = start_call(call_id="call-1", thread_id="thread-1", seller_id=SELLER, buyer_id=BUYER, now=T0)
    assert t.state.phase is CallPhase.RINGING
    assert t.state.is_live
    assert t.state.seller.joined_at == T0 and t.state.seller.in_call
    assert t.state.buyer.joined_at is None and not t.state.buyer.in_call
    assert t.changes == (
        PhaseChanged("call-1", None, CallPhase.RINGING, T0),
        CallEvent("call-1", CallEventKind.JOINED, T0, SELLER),
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seller_id": BUYER}, "different users"),
        ({"call_id": ""}, "non-empty"),
        ({"now": datetime(2026, 3, 1, 12, 0)}, "timezone-aware"),
    ],
)
def test_start_call_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "call_id": "call-1",
        "thread_id": "thread-1",
        "seller_id": SELLER,
        "buyer_id": BUYER,
        "now": T0,
    } | kwargs
    with pytest.raises(ValueError, match=message):
        start_call(**args)  # type: ignore[arg-type]


def test_timeouts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ring"):
        CallTimeouts(ring=timedelta(0))
    with pytest.raises(ValueError, match="reconnect_grace"):
        CallTimeouts(reconnect_grace=timedelta(seconds=-1))


def test_default_timeouts() -> None:
    timeouts = CallTimeouts()
    assert timeouts.ring == timedelta(seconds=45)
    assert timeouts.reconnect_grace == timedelta(seconds=20)
    assert timeouts.connect == timedelta(seconds=30)


def test_accept_joins_the_buyer_and_connects() -> None:
    t = advance(ringing(), Accept(BUYER), at(5))
    assert t.state.phase is CallPhase.CONNECTING
    assert t.state.answered_at == at(5)
    assert t.state.buyer.joined_at == at(5)
    assert t.changes == (
        CallEvent("call-1", CallEventKind.JOINED, at(5), BUYER),
        PhaseChanged("call-1", CallPhase.RINGING, CallPhase.CONNECTING, at(5)),
    )


def test_both_legs_connected_makes_the_call_active() -> None:
    first = advance(connecting(), connected(SELLER), at(6))
    assert first.state.phase is CallPhase.CONNECTING
    assert first.changes == ()
    assert first.state.seller.media_connected
    second = advance(first.state, connected(BUYER), at(7))
    assert second.state.phase is CallPhase.ACTIVE
    assert second.state.active_at == at(7)
    assert second.changes == (
        PhaseChanged("call-1", CallPhase.CONNECTING, CallPhase.ACTIVE, at(7)),
    )


def test_the_sellers_leg_may_connect_while_ringing() -> None:
    early = advance(ringing(), connected(SELLER), at(2))
    assert early.state.phase is CallPhase.RINGING
    assert early.changes == ()
    accepted = advance(early.state, Accept(BUYER), at(5)).state
    t = advance(accepted, connected(BUYER), at(6))
    assert t.state.phase is CallPhase.ACTIVE


def test_media_connected_again_while_active_changes_nothing() -> None:
    state = active()
    t = advance(state, connected(SELLER), at(30))
    assert t.state == state
    assert t.changes == ()


# --- every end reason ------------------------------------------------------------------


@pytest.mark.parametrize("who", [SELLER, BUYER])
@pytest.mark.parametrize("make", [connecting, active], ids=["connecting", "active"])
def test_hang_up_by_either_participant(who: str, make: MakeState) -> None:
    state = make()
    t = advance(state, HangUp(who), at(60))
    end = ended(t)
    assert end == CallEnd(EndReason.HUNG_UP, at(60), by=who)
    other = BUYER if who == SELLER else SELLER
    # The one who hung up leaves first, then the other, then the phase changes.
    assert kinds(t) == [(CallEventKind.LEFT, who), (CallEventKind.LEFT, other)]
    assert all(e.detail == "hung_up" for e in t.events)
    assert t.changes[-1] == PhaseChanged("call-1", state.phase, CallPhase.ENDED, at(60), end)
    assert t.state.seller.left_at == at(60) and t.state.buyer.left_at == at(60)
    assert not t.state.seller.media_connected


def test_decline_by_the_buyer() -> None:
    t = advance(ringing(), Decline(BUYER), at(3))
    assert ended(t) == CallEnd(EndReason.DECLINED, at(3), by=BUYER)
    # The buyer never joined, so only the seller leaves.
    assert kinds(t) == [(CallEventKind.LEFT, SELLER)]


def test_cancel_by_the_seller() -> None:
    t = advance(ringing(), Cancel(SELLER), at(3))
    assert ended(t) == CallEnd(EndReason.CANCELLED, at(3), by=SELLER)
    assert kinds(t) == [(CallEventKind.LEFT, SELLER)]


def test_missed_when_the_ring_deadline_passes() -> None:
    state = ringing()
    assert state.next_deadline() == Deadline(DeadlineKind.RING, at(45))
    early = advance(state, DeadlinesDue(), at(44.9))
    assert early.state == state and early.changes == ()
    t = advance(state, DeadlinesDue(), at(45))
    assert ended(t) == CallEnd(EndReason.MISSED, at(45))
    assert kinds(t) == [(CallEventKind.LEFT, SELLER)]


def test_ring_timeout_is_configurable() -> None:
    state = ringing(CallTimeouts(ring=timedelta(seconds=10)))
    assert state.ring_deadline == at(10)
    assert ended(advance(state, DeadlinesDue(), at(10))).reason is EndReason.MISSED


@pytest.mark.parametrize("detail", list(FailureDetail))
@pytest.mark.parametrize("make", [ringing, connecting, active], ids=["ringing", "conn", "active"])
def test_media_unavailable_ends_the_call_at_once(detail: FailureDetail, make: MakeState) -> None:
    t = advance(make(), MediaUnavailable(detail), at(20))
    assert ended(t) == CallEnd(EndReason.FAILED, at(20), detail=detail.value)


def test_a_leg_that_fails_before_it_ever_connected_ends_the_call_ice_failed() -> None:
    t = advance(connecting(), LegStateChanged(BUYER, LegState.FAILED), at(20))
    assert ended(t) == CallEnd(EndReason.FAILED, at(20), by=BUYER, detail="ice_failed")
    assert kinds(t)[0] == (CallEventKind.LEFT, BUYER)


def test_a_leg_that_fails_before_it_ever_connected_while_ringing_ends_the_call() -> None:
    t = advance(ringing(), LegStateChanged(SELLER, LegState.FAILED), at(2))
    assert ended(t) == CallEnd(EndReason.FAILED, at(2), by=SELLER, detail="ice_failed")


def test_connect_timeout_fails_a_call_that_never_connects() -> None:
    state = connecting()
    assert state.next_deadline() == Deadline(DeadlineKind.CONNECT, at(5 + 30))
    assert advance(state, DeadlinesDue(), at(34)).changes == ()
    t = advance(state, DeadlinesDue(), at(35))
    assert ended(t) == CallEnd(EndReason.FAILED, at(35), detail="connect_timeout")


@pytest.mark.parametrize(
    "reason",
    ["thread_has_order", "account_restricted", "buyer_blocked_seller", "thread_not_active"],
)
@pytest.mark.parametrize("make", [ringing, connecting, active], ids=["ringing", "conn", "active"])
def test_ineligible_mid_call_carries_the_reason_code(reason: str, make: MakeState) -> None:
    t = advance(make(), EligibilityLost(reason), at(30))
    assert ended(t) == CallEnd(EndReason.INELIGIBLE, at(30), detail=reason)


def test_ineligible_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="reason"):
        advance(active(), EligibilityLost(""), at(30))


@pytest.mark.parametrize("make", [ringing, connecting, active], ids=["ringing", "conn", "active"])
def test_server_shutdown_ends_every_live_phase(make: MakeState) -> None:
    state = make()
    t = advance(state, ServerShutdown(), at(30))
    assert ended(t) == CallEnd(EndReason.SERVER_SHUTDOWN, at(30))
    assert {u for _, u in kinds(t)} == {p.user_id for p in state.participants if p.in_call}


def test_every_end_reason_is_reachable() -> None:
    reached = {
        ended(advance(active(), HangUp(SELLER), at(9))).reason,
        ended(advance(ringing(), DeadlinesDue(), at(45))).reason,
        ended(advance(ringing(), Decline(BUYER), at(9))).reason,
        ended(advance(ringing(), Cancel(SELLER), at(9))).reason,
        ended(advance(active(), MediaUnavailable(FailureDetail.RECORDING_FAILED), at(9))).reason,
        ended(advance(active(), EligibilityLost("thread_has_order"), at(9))).reason,
        ended(advance(active(), ServerShutdown(), at(9))).reason,
    }
    assert reached == set(EndReason)


# --- grace periods ---------------------------------------------------------------------


def test_lost_participant_starts_a_grace_deadline() -> None:
    t = advance(active(), SocketClosed(BUYER), at(100))
    assert t.state.phase is CallPhase.ACTIVE
    assert t.changes == (
        CallEvent("call-1", CallEventKind.RECONNECTING, at(100), BUYER, "ws_closed"),
    )
    assert t.state.buyer.lost_since == at(100)
    assert not t.state.buyer.media_connected
    assert t.state.grace_deadline(BUYER) == at(120)
    assert t.state.grace_deadline(SELLER) is None
    assert t.state.next_deadline() == Deadline(DeadlineKind.RECONNECT_GRACE, at(120), BUYER)
    assert t.state.expired_grace(at(119.9)) == ()
    assert t.state.expired_grace(at(120)) == (BUYER,)


def test_losing_an_already_lost_participant_changes_nothing() -> None:
    state = advance(active(), SocketClosed(BUYER), at(100)).state
    t = advance(state, SocketClosed(BUYER), at(105))
    assert t.state == state and t.changes == ()
    assert t.state.grace_deadline(BUYER) == at(120)  # the clock did not restart


def test_grace_expiry_fails_the_call_as_participant_lost() -> None:
    state = advance(active(), SocketClosed(BUYER), at(100)).state
    assert advance(state, DeadlinesDue(), at(119)).changes == ()
    t = advance(state, DeadlinesDue(), at(120))
    assert ended(t) == CallEnd(EndReason.FAILED, at(120), by=BUYER, detail="participant_lost")
    # The lost participant leaves first; lost_since stays as a record of when.
    assert kinds(t) == [(CallEventKind.LEFT, BUYER), (CallEventKind.LEFT, SELLER)]
    assert t.state.buyer.lost_since == at(100)


def test_reconnected_within_grace_keeps_the_call() -> None:
    state = advance(active(), SocketClosed(BUYER), at(100)).state
    t = advance(state, SocketAttached(BUYER), at(110))
    assert t.changes == (CallEvent("call-1", CallEventKind.RECONNECTED, at(110), BUYER),)
    assert t.state.buyer.lost_since is None
    assert t.state.next_deadline() is None
    assert advance(t.state, DeadlinesDue(), at(200)).changes == ()


def test_media_connected_brings_a_lost_participant_back() -> None:
    state = advance(active(), LegStateChanged(SELLER, LegState.DISCONNECTED), at(100)).state
    t = advance(state, connected(SELLER), at(104))
    assert kinds(t) == [(CallEventKind.RECONNECTED, SELLER)]
    assert t.state.seller.media_connected and not t.state.seller.lost
    assert t.state.phase is CallPhase.ACTIVE


def test_reconnected_when_not_lost_changes_nothing() -> None:
    state = active()
    t = advance(state, SocketAttached(SELLER), at(30))
    assert t.state == state and t.changes == ()


# --- the link rules: what a socket or a media leg report does --------------------------


def test_a_closed_call_socket_loses_the_participant() -> None:
    t = advance(active(), SocketClosed(BUYER), at(100))
    assert t.changes == (
        CallEvent("call-1", CallEventKind.RECONNECTING, at(100), BUYER, "ws_closed"),
    )
    assert t.state.buyer.socket_lost and not t.state.buyer.media_lost


@pytest.mark.parametrize(
    ("leg", "cause"),
    [
        (LegState.DISCONNECTED, "ice_disconnected"),
        (LegState.FAILED, "media_failed"),
        (LegState.CLOSED, "media_closed"),
    ],
)
def test_a_leg_lost_after_it_connected_loses_the_participant(leg: LegState, cause: str) -> None:
    t = advance(active(), LegStateChanged(BUYER, leg), at(100))
    assert t.state.phase is CallPhase.ACTIVE
    assert t.changes == (CallEvent("call-1", CallEventKind.RECONNECTING, at(100), BUYER, cause),)
    assert t.state.buyer.media_lost and not t.state.buyer.media_connected
    assert t.state.grace_deadline(BUYER) == at(120)


def test_a_leg_disconnected_before_it_ever_connected_loses_not_ends() -> None:
    t = advance(connecting(), LegStateChanged(BUYER, LegState.DISCONNECTED), at(6))
    assert t.state.phase is CallPhase.CONNECTING
    assert kinds(t) == [(CallEventKind.RECONNECTING, BUYER)]


def test_a_leg_that_connected_once_may_fail_and_come_back() -> None:
    state = advance(connecting(), connected(BUYER), at(6)).state
    state = advance(state, LegStateChanged(BUYER, LegState.FAILED), at(7)).state
    assert state.is_live and state.buyer.lost
    t = advance(state, connected(BUYER), at(9))
    assert kinds(t) == [(CallEventKind.RECONNECTED, BUYER)]
    assert t.state.buyer.media_ever_connected and not t.state.buyer.lost


def test_media_back_while_the_socket_is_still_lost_is_not_back() -> None:
    state = advance(active(), SocketClosed(BUYER), at(100)).state
    state = advance(state, LegStateChanged(BUYER, LegState.DISCONNECTED), at(101)).state
    t = advance(state, connected(BUYER), at(105))
    assert t.changes == ()
    assert t.state.buyer.lost and not t.state.buyer.media_lost
    assert not t.state.buyer.media_connected
    assert t.state.grace_deadline(BUYER) == at(120)  # one grace clock, from the first loss


def test_a_socket_back_while_the_media_is_still_lost_is_not_back() -> None:
    state = advance(active(), SocketClosed(BUYER), at(100)).state
    state = advance(state, LegStateChanged(BUYER, LegState.CLOSED), at(101)).state
    t = advance(state, SocketAttached(BUYER), at(105))
    assert t.changes == ()
    assert t.state.buyer.lost and not t.state.buyer.socket_lost


@pytest.mark.parametrize("socket_first", [True, False], ids=["socket-first", "media-first"])
def test_back_when_both_socket_and_media_are_up_in_either_order(socket_first: bool) -> None:
    state = advance(active(), SocketClosed(BUYER), at(100)).state
    state = advance(state, LegStateChanged(BUYER, LegState.DISCONNECTED), at(101)).state
    first, second = (
        (SocketAttached(BUYER), connected(BUYER))
        if socket_first
        else (connected(BUYER), SocketAttached(BUYER))
    )
    state = advance(state, first, at(105)).state
    t = advance(state, second, at(106))
    assert t.changes == (CallEvent("call-1", CallEventKind.RECONNECTED, at(106), BUYER),)
    assert t.state.buyer.media_connected and not t.state.buyer.lost


def test_a_socket_back_with_the_leg_still_up_counts_as_media_connected() -> None:
    # The seller's socket drops while connecting; their leg stays up. When the socket is
    # back the seller counts as connected again, so the buyer's leg makes the call active.
    state = advance(connecting(), connected(SELLER), at(6)).state
    state = advance(state, SocketClosed(SELLER), at(7)).state
    state = advance(state, SocketAttached(SELLER), at(8)).state
    assert state.seller.media_connected and not state.seller.lost
    t = advance(state, connected(BUYER), at(9))
    assert t.state.phase is CallPhase.ACTIVE


def test_a_socket_back_before_the_leg_ever_connected_is_back_but_not_connected() -> None:
    state = advance(connecting(), SocketClosed(BUYER), at(6)).state
    t = advance(state, SocketAttached(BUYER), at(7))
    assert kinds(t) == [(CallEventKind.RECONNECTED, BUYER)]
    assert not t.state.buyer.media_connected


def test_both_lost_the_earliest_grace_wins() -> None:
    state = advance(active(), SocketClosed(SELLER), at(100)).state
    state = advance(state, SocketClosed(BUYER), at(105)).state
    assert [d.user_id for d in state.deadlines()] == [SELLER, BUYER]
    assert state.expired_grace(at(125)) == (SELLER, BUYER)
    t = advance(state, DeadlinesDue(), at(125))
    assert ended(t).by == SELLER


def test_seller_lost_while_ringing_races_the_ring_deadline() -> None:
    state = advance(ringing(), SocketClosed(SELLER), at(10)).state
    deadlines = state.deadlines()
    assert deadlines == (
        Deadline(DeadlineKind.RECONNECT_GRACE, at(30), SELLER),
        Deadline(DeadlineKind.RING, at(45)),
    )
    assert ended(advance(state, DeadlinesDue(), at(30))).detail == "participant_lost"


def test_lost_during_connecting_can_come_back_and_go_active() -> None:
    state = advance(connecting(), connected(BUYER), at(6)).state
    state = advance(state, LegStateChanged(SELLER, LegState.DISCONNECTED), at(7)).state
    assert [d.kind for d in state.deadlines()] == [
        DeadlineKind.RECONNECT_GRACE,
        DeadlineKind.CONNECT,
    ]
    t = advance(state, connected(SELLER), at(12))
    assert [c.phase for c in t.changes if isinstance(c, PhaseChanged)] == [CallPhase.ACTIVE]
    assert kinds(t) == [(CallEventKind.RECONNECTED, SELLER)]


def test_a_leg_lost_while_connecting_does_not_count_as_connected() -> None:
    state = advance(connecting(), connected(SELLER), at(6)).state
    state = advance(state, SocketClosed(SELLER), at(7)).state
    t = advance(state, connected(BUYER), at(8))
    assert t.state.phase is CallPhase.CONNECTING


def test_deadlines_due_after_the_end_is_a_no_op() -> None:
    state = advance(ringing(), Decline(BUYER), at(3)).state
    t = advance(state, DeadlinesDue(), at(100))
    assert t.state == state and t.changes == ()
    assert state.next_deadline() is None
    assert state.expired_grace(at(1000)) == ()


def test_active_call_has_no_deadlines() -> None:
    assert active().deadlines() == ()


# --- in-call events --------------------------------------------------------------------


def test_media_state_emits_only_changes() -> None:
    state = active()
    t = advance(state, MediaStateChanged(SELLER, audio=False, video=True), at(10))
    assert kinds(t) == [(CallEventKind.MUTED, SELLER)]
    t = advance(t.state, MediaStateChanged(SELLER, audio=False, video=False), at(11))
    assert kinds(t) == [(CallEventKind.CAMERA_OFF, SELLER)]
    same = advance(t.state, MediaStateChanged(SELLER, audio=False, video=False), at(12))
    assert same.changes == () and same.state == t.state
    t = advance(t.state, MediaStateChanged(SELLER, audio=True, video=True), at(13))
    assert kinds(t) == [(CallEventKind.UNMUTED, SELLER), (CallEventKind.CAMERA_ON, SELLER)]
    assert t.state.seller.audio and t.state.seller.video


def test_media_state_while_ringing_is_the_sellers_preview() -> None:
    t = advance(ringing(), MediaStateChanged(SELLER, audio=True, video=False), at(1))
    assert kinds(t) == [(CallEventKind.CAMERA_OFF, SELLER)]


def test_chat_is_recorded_with_message_id_and_flags() -> None:
    t = advance(active(), ChatPosted(BUYER, "msg-1", ("contact_details",)), at(20))
    assert t.changes == (
        CallEvent("call-1", CallEventKind.CHAT, at(20), BUYER, "msg-1", ("contact_details",)),
    )
    assert t.state == active()


def test_chat_while_connecting_is_allowed() -> None:
    assert kinds(advance(connecting(), ChatPosted(SELLER, "m"), at(6))) == [
        (CallEventKind.CHAT, SELLER)
    ]


@pytest.mark.parametrize(
    "make",
    [ringing, connecting, active, lambda: advance(active(), HangUp(SELLER), at(50)).state],
    ids=["ringing", "connecting", "active", "ended"],
)
@pytest.mark.parametrize("who", [SELLER, BUYER])
def test_report_in_any_phase_by_either_participant(make: MakeState, who: str) -> None:
    state = make()
    t = advance(state, Reported(who, "off_platform_contact"), at(60))
    assert t.changes == (
        CallEvent("call-1", CallEventKind.REPORT, at(60), who, "off_platform_contact"),
    )
    assert t.state == state


def test_every_event_kind_is_emitted() -> None:
    seen: set[CallEventKind] = set()
    state = ringing()
    steps: list[CallInput] = [
        Accept(BUYER),
        connected(SELLER),
        connected(BUYER),
        MediaStateChanged(BUYER, audio=False, video=False),
        MediaStateChanged(BUYER, audio=True, video=True),
        SocketClosed(SELLER),
        SocketAttached(SELLER),
        ChatPosted(SELLER, "m1"),
        Reported(BUYER, "other"),
        HangUp(BUYER),
    ]
    for i, step in enumerate(steps):
        t = advance(state, step, at(i + 1))
        seen |= {e.kind for e in t.events}
        state = t.state
    assert seen | {CallEventKind.JOINED} == set(CallEventKind)
    assert state.end == CallEnd(EndReason.HUNG_UP, at(len(steps)), by=BUYER)


# --- who may do what -------------------------------------------------------------------


def _ended_declined() -> CallState:
    return advance(ringing(), Decline(BUYER), at(3)).state


ILLEGAL_IN_PHASE: list[tuple[str, MakeState, CallInput, str]] = [
    ("accept", connecting, Accept(BUYER), "cannot accept a call that is connecting"),
    ("accept", active, Accept(BUYER), "cannot accept a call that is active"),
    (
        "accept",
        _ended_declined,
        Accept(BUYER),
        "cannot accept a call that is ended (ended: declined)",
    ),
    ("decline", active, Decline(BUYER), "cannot decline a call that is active"),
    ("cancel", connecting, Cancel(SELLER), "cannot cancel a call that is connecting"),
    ("hang up", ringing, HangUp(SELLER), "cannot hang up a call that is ringing"),
    ("hang up", ringing, HangUp(BUYER), "cannot hang up a call that is ringing"),
    (
        "hang up",
        _ended_declined,
        HangUp(SELLER),
        "cannot hang up a call that is ended (ended: declined)",
    ),
    ("chat", ringing, ChatPosted(SELLER, "m"), "cannot chat in a call that is ringing"),
    ("chat", _ended_declined, ChatPosted(SELLER, "m"), "that is ended (ended: declined)"),
    ("media", _ended_declined, connected(SELLER), "that is ended"),
    ("leg failed", _ended_declined, LegStateChanged(SELLER, LegState.FAILED), "that is ended"),
    ("media state", _ended_declined, MediaStateChanged(SELLER, True, True), "that is ended"),
    ("lost", _ended_declined, SocketClosed(SELLER), "that is ended"),
    ("back", _ended_declined, SocketAttached(SELLER), "that is ended"),
    ("ineligible", _ended_declined, EligibilityLost("thread_has_order"), "that is ended"),
    ("shutdown", _ended_declined, ServerShutdown(), "cannot shut down a call that is ended"),
]


@pytest.mark.parametrize(
    ("make", "event", "message"),
    [(m, e, msg) for _, m, e, msg in ILLEGAL_IN_PHASE],
    ids=[f"{name}-{i}" for i, (name, *_rest) in enumerate(ILLEGAL_IN_PHASE)],
)
def test_illegal_transitions_name_the_current_state(
    make: MakeState, event: CallInput, message: str
) -> None:
    state = make()
    with pytest.raises(
        IllegalCallTransition, match=message.replace("(", r"\(").replace(")", r"\)")
    ) as info:
        advance(state, event, at(100))
    assert info.value.phase is state.phase
    assert info.value.end == state.end


def test_failed_end_names_its_detail() -> None:
    state = advance(active(), MediaUnavailable(FailureDetail.RECORDING_FAILED), at(9)).state
    with pytest.raises(IllegalCallTransition) as info:
        advance(state, HangUp(BUYER), at(10))
    assert str(info.value) == "cannot hang up a call that is ended (ended: failed/recording_failed)"


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (Accept(SELLER), "only the buyer may accept a call; user seller-1 is the seller"),
        (Decline(SELLER), "only the buyer may decline"),
        (Cancel(BUYER), "only the seller may cancel"),
    ],
)
def test_wrong_role_while_ringing(event: CallInput, message: str) -> None:
    with pytest.raises(CallActionNotAllowed, match=message) as info:
        advance(ringing(), event, at(1))
    assert info.value.phase is CallPhase.RINGING
    assert "(call is ringing)" in str(info.value)


@pytest.mark.parametrize(
    "event",
    [
        connected(BUYER),
        LegStateChanged(BUYER, LegState.FAILED),
        SocketClosed(BUYER),
        SocketAttached(BUYER),
        MediaStateChanged(BUYER, False, False),
    ],
)
def test_the_buyer_cannot_act_in_a_ringing_call_before_joining(event: CallInput) -> None:
    with pytest.raises(CallActionNotAllowed, match="user buyer-1 is not in this call"):
        advance(ringing(), event, at(1))


@pytest.mark.parametrize(
    "event",
    [
        Accept(STRANGER),
        Decline(STRANGER),
        Cancel(STRANGER),
        HangUp(STRANGER),
        connected(STRANGER),
        ChatPosted(STRANGER, "m"),
        Reported(STRANGER, "other"),
        MediaStateChanged(STRANGER, True, True),
    ],
)
def test_strangers_are_not_participants(event: CallInput) -> None:
    state = ringing() if isinstance(event, Accept | Decline | Cancel) else active()
    with pytest.raises(NotACallParticipant, match="someone-else is not a participant"):
        advance(state, event, at(1))


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        advance(ringing(), Accept(BUYER), datetime(2026, 3, 1, 12, 0, 5))


def test_state_is_immutable_and_inputs_do_not_mutate_it() -> None:
    state = active()
    before = repr(state)
    advance(state, HangUp(SELLER), at(99))
    assert repr(state) == before
    with pytest.raises(AttributeError):
        state.phase = CallPhase.ENDED  # type: ignore[misc]


def test_describe_and_peer_of() -> None:
    state = active()
    assert state.describe() == "active"
    assert state.peer_of(SELLER).user_id == BUYER
    assert state.peer_of(BUYER).user_id == SELLER
    assert _ended_declined().describe() == "ended: declined"


def test_strangers_do_not_learn_the_phase() -> None:
    state = advance(ringing(), Decline(BUYER), at(3)).state
    with pytest.raises(NotACallParticipant) as info:
        advance(state, HangUp(STRANGER), at(4))
    assert "ended" not in str(info.value)
