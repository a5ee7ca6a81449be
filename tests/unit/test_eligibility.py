"""Every eligibility rule on its own, and the eight core combinations."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from signaling.eligibility import (
    EligibilityContext,
    EligibilityPolicy,
    ReasonCode,
    ThreadSnapshot,
    UserSnapshot,
    call_eligibility,
    ongoing_call_eligibility,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SELLER = UserSnapshot(id="s", role="seller", business_program="member")
BUYER = UserSnapshot(id="b", role="buyer", vid=True)
THREAD = ThreadSnapshot(
    id="t",
    seller_id="s",
    buyer_id="b",
    initiated_by="buyer",
    state="open",
    order_placed=False,
    last_buyer_activity_at=NOW - timedelta(days=1),
)


def ctx(**changes: object) -> EligibilityContext:
    base = EligibilityContext(
        caller=SELLER,
        seller=SELLER,
        buyer=BUYER,
        thread=THREAD,
        now=NOW,
        policy=EligibilityPolicy(),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def codes(context: EligibilityContext) -> set[ReasonCode]:
    return set(call_eligibility(context).codes)


def test_all_rules_hold() -> None:
    decision = call_eligibility(ctx())
    assert decision.allowed
    assert decision.reasons == ()


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (ctx(caller=BUYER), ReasonCode.CALLER_NOT_SELLER),
        (
            ctx(caller=UserSnapshot(id="other", role="seller", business_program="member")),
            ReasonCode.CALLER_NOT_SELLER,
        ),
        *[
            (
                ctx(
                    seller=replace(SELLER, business_program=s),
                    caller=replace(SELLER, business_program=s),
                ),
                ReasonCode.SELLER_NOT_IN_BUSINESS_PROGRAM,
            )
            for s in ("none", "invited", "suspended")
        ],
        (ctx(buyer=replace(BUYER, vid=False)), ReasonCode.BUYER_NOT_VID),
        (ctx(buyer=replace(BUYER, restricted=True)), ReasonCode.ACCOUNT_RESTRICTED),
        (ctx(seller=replace(SELLER, restricted=True)), ReasonCode.ACCOUNT_RESTRICTED),
        (ctx(thread=replace(THREAD, initiated_by="seller")), ReasonCode.THREAD_NOT_BUYER_INITIATED),
        (ctx(thread=replace(THREAD, order_placed=True)), ReasonCode.THREAD_HAS_ORDER),
        *[
            (ctx(thread=replace(THREAD, state=s)), ReasonCode.THREAD_NOT_ACTIVE)
            for s in ("archived", "blocked", "closed")
        ],
        (
            ctx(thread=replace(THREAD, last_buyer_activity_at=NOW - timedelta(days=15))),
            ReasonCode.THREAD_NOT_ACTIVE,
        ),
        (ctx(thread=replace(THREAD, last_buyer_activity_at=None)), ReasonCode.THREAD_NOT_ACTIVE),
        (ctx(thread=replace(THREAD, buyer_blocked_seller=True)), ReasonCode.BUYER_BLOCKED_SELLER),
        (ctx(thread=replace(THREAD, live_calls_on_thread=1)), ReasonCode.CALL_ALREADY_ACTIVE),
        (ctx(thread=replace(THREAD, live_calls_for_seller=1)), ReasonCode.CALL_ALREADY_ACTIVE),
        (ctx(thread=replace(THREAD, live_calls_for_buyer=1)), ReasonCode.CALL_ALREADY_ACTIVE),
        (ctx(thread=replace(THREAD, recent_call_attempts=5)), ReasonCode.RATE_LIMITED),
    ],
)
def test_each_rule_fails_alone(context: EligibilityContext, expected: ReasonCode) -> None:
    assert codes(context) == {expected}


def test_activity_window_edge_and_setting() -> None:
    at_edge = replace(THREAD, last_buyer_activity_at=NOW - timedelta(days=14))
    assert codes(ctx(thread=at_edge)) == set()
    shorter = EligibilityPolicy(activity_window=timedelta(days=3))
    assert codes(
        ctx(thread=replace(THREAD, last_buyer_activity_at=NOW - timedelta(days=4)), policy=shorter)
    ) == {ReasonCode.THREAD_NOT_ACTIVE}


def test_rate_limit_follows_policy() -> None:
    policy = EligibilityPolicy(call_attempt_limit=2)
    assert codes(ctx(thread=replace(THREAD, recent_call_attempts=1), policy=policy)) == set()
    assert codes(ctx(thread=replace(THREAD, recent_call_attempts=2), policy=policy)) == {
        ReasonCode.RATE_LIMITED
    }


def test_every_failing_reason_is_reported_not_only_the_first() -> None:
    context = ctx(
        caller=BUYER,
        buyer=replace(BUYER, vid=False, restricted=True),
        thread=replace(THREAD, order_placed=True, initiated_by="seller"),
    )
    assert codes(context) == {
        ReasonCode.CALLER_NOT_SELLER,
        ReasonCode.BUYER_NOT_VID,
        ReasonCode.ACCOUNT_RESTRICTED,
        ReasonCode.THREAD_HAS_ORDER,
        ReasonCode.THREAD_NOT_BUYER_INITIATED,
    }
    assert all(r.message for r in call_eligibility(context).reasons)


def thread_for(eligible_thread: bool, variant: int) -> ThreadSnapshot:
    """A thread that is active, buyer-initiated and pre-order, or one that breaks one of those."""
    if eligible_thread:
        return THREAD
    return [
        replace(THREAD, state="closed"),
        replace(THREAD, initiated_by="seller"),
        replace(THREAD, order_placed=True),
    ][variant]


@pytest.mark.parametrize(
    ("member", "vid", "good_thread"), list(itertools.product([True, False], repeat=3))
)
@pytest.mark.parametrize("variant", [0, 1, 2])
def test_eight_combinations_only_all_true_is_allowed(
    member: bool, vid: bool, good_thread: bool, variant: int
) -> None:
    seller = replace(SELLER, business_program="member" if member else "invited")
    context = ctx(
        caller=seller,
        seller=seller,
        buyer=replace(BUYER, vid=vid),
        thread=thread_for(good_thread, variant),
    )
    decision = call_eligibility(context)
    assert decision.allowed == (member and vid and good_thread)
    assert (ReasonCode.SELLER_NOT_IN_BUSINESS_PROGRAM in decision.codes) == (not member)
    assert (ReasonCode.BUYER_NOT_VID in decision.codes) == (not vid)


def test_ongoing_rules_ignore_start_only_rules() -> None:
    context = ctx(thread=replace(THREAD, live_calls_on_thread=1, recent_call_attempts=99))
    assert ongoing_call_eligibility(context).allowed
    blocked = ctx(thread=replace(THREAD, buyer_blocked_seller=True, order_placed=True))
    assert ongoing_call_eligibility(blocked).codes == {
        ReasonCode.BUYER_BLOCKED_SELLER,
        ReasonCode.THREAD_HAS_ORDER,
    }
