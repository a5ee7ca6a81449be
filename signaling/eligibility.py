"""Who may call whom (DESIGN.md section 2), as pure functions over plain snapshots.

The caller loads the snapshots and acts on the decision; nothing here does I/O. Every
failing rule is reported, not only the first, so pages can explain and tests can check
each reason on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

BusinessProgramStatus = Literal["none", "invited", "member", "suspended"]
ThreadState = Literal["open", "archived", "blocked", "closed"]
Role = Literal["seller", "buyer", "reviewer", "admin"]


class ReasonCode(StrEnum):
    CALLER_NOT_SELLER = "caller_not_seller"
    SELLER_NOT_IN_BUSINESS_PROGRAM = "seller_not_in_business_program"
    BUYER_NOT_VID = "buyer_not_vid"
    ACCOUNT_RESTRICTED = "account_restricted"
    THREAD_NOT_BUYER_INITIATED = "thread_not_buyer_initiated"
    THREAD_HAS_ORDER = "thread_has_order"
    THREAD_NOT_ACTIVE = "thread_not_active"
    BUYER_BLOCKED_SELLER = "buyer_blocked_seller"
    CALL_ALREADY_ACTIVE = "call_already_active"
    RATE_LIMITED = "rate_limited"


REASON_MESSAGES: dict[ReasonCode, str] = {
    ReasonCode.CALLER_NOT_SELLER: "Only the seller of this conversation can start a video call.",
    ReasonCode.SELLER_NOT_IN_BUSINESS_PROGRAM: (
        "Video calls are available to sellers who are members of the Business program."
    ),
    ReasonCode.BUYER_NOT_VID: "Video calls are available only with VID buyers.",
    ReasonCode.ACCOUNT_RESTRICTED: "One of the accounts is restricted and cannot take calls.",
    ReasonCode.THREAD_NOT_BUYER_INITIATED: (
        "Video calls are possible only in conversations the buyer started."
    ),
    ReasonCode.THREAD_HAS_ORDER: (
        "An order exists for this conversation; continue on the order page."
    ),
    ReasonCode.THREAD_NOT_ACTIVE: (
        "This conversation is not active (closed, archived, or no recent buyer activity)."
    ),
    ReasonCode.BUYER_BLOCKED_SELLER: "The buyer is not accepting calls from this seller.",
    ReasonCode.CALL_ALREADY_ACTIVE: "A call is already in progress for one of you.",
    ReasonCode.RATE_LIMITED: "Too many call attempts in this conversation; try again later.",
}


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode
    message: str

    @classmethod
    def of(cls, code: ReasonCode) -> Reason:
        return cls(code, REASON_MESSAGES[code])


@dataclass(frozen=True, slots=True)
class UserSnapshot:
    id: str
    role: Role
    business_program: BusinessProgramStatus = "none"
    vid: bool = False
    restricted: bool = False


@dataclass(frozen=True, slots=True)
class ThreadSnapshot:
    id: str
    seller_id: str
    buyer_id: str
    initiated_by: Literal["buyer", "seller"]
    state: ThreadState
    order_placed: bool
    last_buyer_activity_at: datetime | None
    buyer_blocked_seller: bool = False
    # Live calls (ringing, connecting or active) that involve this thread, the seller
    # or the buyer; the caller counts them.
    live_calls_on_thread: int = 0
    live_calls_for_seller: int = 0
    live_calls_for_buyer: int = 0
    recent_call_attempts: int = 0


@dataclass(frozen=True, slots=True)
class EligibilityPolicy:
    activity_window: timedelta = timedelta(days=14)
    call_attempt_limit: int = 5


@dataclass(frozen=True, slots=True)
class EligibilityContext:
    caller: UserSnapshot
    seller: UserSnapshot
    buyer: UserSnapshot
    thread: ThreadSnapshot
    now: datetime
    policy: EligibilityPolicy


@dataclass(frozen=True, slots=True)
class EligibilityDecision:
    reasons: tuple[Reason, ...]

    @property
    def allowed(self) -> bool:
        return not self.reasons

    @property
    def codes(self) -> frozenset[ReasonCode]:
        return frozenset(r.code for r in self.reasons)


# One predicate per rule: True when the rule holds.
def caller_is_seller(ctx: EligibilityContext) -> bool:
    return ctx.caller.id == ctx.thread.seller_id and ctx.caller.role == "seller"


def seller_in_business_program(ctx: EligibilityContext) -> bool:
    return ctx.seller.role == "seller" and ctx.seller.business_program == "member"


def buyer_is_vid(ctx: EligibilityContext) -> bool:
    return ctx.buyer.role == "buyer" and ctx.buyer.vid


def no_account_restricted(ctx: EligibilityContext) -> bool:
    return not (ctx.seller.restricted or ctx.buyer.restricted)


def thread_buyer_initiated(ctx: EligibilityContext) -> bool:
    return ctx.thread.initiated_by == "buyer"


def thread_pre_order(ctx: EligibilityContext) -> bool:
    return not ctx.thread.order_placed


def thread_active(ctx: EligibilityContext) -> bool:
    last = ctx.thread.last_buyer_activity_at
    if ctx.thread.state != "open" or last is None:
        return False
    return ctx.now - last <= ctx.policy.activity_window


def buyer_has_not_blocked_seller(ctx: EligibilityContext) -> bool:
    return not ctx.thread.buyer_blocked_seller


def no_other_live_call(ctx: EligibilityContext) -> bool:
    t = ctx.thread
    return (
        t.live_calls_on_thread == 0
        and t.live_calls_for_seller == 0
        and (t.live_calls_for_buyer == 0)
    )


def under_call_attempt_limit(ctx: EligibilityContext) -> bool:
    return ctx.thread.recent_call_attempts < ctx.policy.call_attempt_limit


RULES: tuple[tuple[ReasonCode, Callable[[EligibilityContext], bool]], ...] = (
    (ReasonCode.CALLER_NOT_SELLER, caller_is_seller),
    (ReasonCode.SELLER_NOT_IN_BUSINESS_PROGRAM, seller_in_business_program),
    (ReasonCode.BUYER_NOT_VID, buyer_is_vid),
    (ReasonCode.ACCOUNT_RESTRICTED, no_account_restricted),
    (ReasonCode.THREAD_NOT_BUYER_INITIATED, thread_buyer_initiated),
    (ReasonCode.THREAD_HAS_ORDER, thread_pre_order),
    (ReasonCode.THREAD_NOT_ACTIVE, thread_active),
    (ReasonCode.BUYER_BLOCKED_SELLER, buyer_has_not_blocked_seller),
    (ReasonCode.CALL_ALREADY_ACTIVE, no_other_live_call),
    (ReasonCode.RATE_LIMITED, under_call_attempt_limit),
)

# Rules that must keep holding while a call is live; the others (rate limit, the live
# call itself, who pressed the button) only gate the start.
ONGOING_RULES: frozenset[ReasonCode] = frozenset(
    {
        ReasonCode.SELLER_NOT_IN_BUSINESS_PROGRAM,
        ReasonCode.BUYER_NOT_VID,
        ReasonCode.ACCOUNT_RESTRICTED,
        ReasonCode.THREAD_HAS_ORDER,
        ReasonCode.THREAD_NOT_ACTIVE,
        ReasonCode.BUYER_BLOCKED_SELLER,
    }
)


def call_eligibility(ctx: EligibilityContext) -> EligibilityDecision:
    """Every rule for starting a call; the decision lists each one that fails."""
    return EligibilityDecision(tuple(Reason.of(code) for code, rule in RULES if not rule(ctx)))


def ongoing_call_eligibility(ctx: EligibilityContext) -> EligibilityDecision:
    """The rules a live call must keep satisfying (checked at join and mid-call)."""
    return EligibilityDecision(
        tuple(Reason.of(code) for code, rule in RULES if code in ONGOING_RULES and not rule(ctx))
    )
