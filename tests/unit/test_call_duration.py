"""One duration everywhere: from active to end, without the time a participant was lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from signaling.call_duration import LinkMark, call_duration
from signaling.call_state import CallEventKind

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def lost(user: str, seconds: float) -> LinkMark:
    return LinkMark(user, at(seconds), lost=True)


def back(user: str, seconds: float) -> LinkMark:
    return LinkMark(user, at(seconds), lost=False)


def test_a_call_that_never_became_active_has_no_duration() -> None:
    assert call_duration(None, at(30), []) is None
    assert call_duration(at(0), None, []) is None


def test_ringing_and_connecting_never_count() -> None:
    # Active 4 s after the ring began; only active -> end counts.
    assert call_duration(at(4), at(18), []) == timedelta(seconds=14)


def test_time_lost_is_not_counted() -> None:
    marks = [lost("buyer", 10), back("buyer", 15)]
    assert call_duration(at(0), at(60), marks) == timedelta(seconds=55)


def test_a_participant_lost_until_the_end_is_dead_air() -> None:
    # The buyer's browser died at 30 s; the grace ran out 20 s later and ended the call.
    assert call_duration(at(0), at(50), [lost("buyer", 30)]) == timedelta(seconds=30)


def test_overlapping_losses_count_once() -> None:
    marks = [lost("seller", 10), lost("buyer", 12), back("seller", 14), back("buyer", 20)]
    assert call_duration(at(0), at(60), marks) == timedelta(seconds=50)


def test_losses_outside_the_active_time_are_clipped() -> None:
    # Lost while connecting, back after the call became active at 5 s.
    marks = [lost("buyer", 2), back("buyer", 8), lost("seller", 58)]
    assert call_duration(at(5), at(60), marks) == timedelta(seconds=55 - 3 - 2)


def test_marks_out_of_order_and_a_stray_back_are_handled() -> None:
    marks = [back("buyer", 15), lost("buyer", 10), back("seller", 3)]
    assert call_duration(at(0), at(20), marks) == timedelta(seconds=15)


def test_end_before_active_is_zero_not_negative() -> None:
    assert call_duration(at(10), at(9), []) == timedelta(0)


def test_only_link_events_make_marks() -> None:
    assert LinkMark.from_event(CallEventKind.RECONNECTING.value, "u", T0) == LinkMark(
        "u", T0, lost=True
    )
    assert LinkMark.from_event(CallEventKind.RECONNECTED.value, "u", T0) == LinkMark(
        "u", T0, lost=False
    )
    assert LinkMark.from_event(CallEventKind.CHAT.value, "u", T0) is None
    assert LinkMark.from_event(CallEventKind.RECONNECTING.value, None, T0) is None
