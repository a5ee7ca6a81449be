"""Adapt database rows into the plain snapshots ``signaling.eligibility`` decides on."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import Block, Call, Thread, User, Violation
from server.settings import Settings
from signaling.eligibility import (
    BusinessProgramStatus,
    EligibilityContext,
    EligibilityDecision,
    EligibilityPolicy,
    Role,
    ThreadSnapshot,
    ThreadState,
    UserSnapshot,
    call_eligibility,
    ongoing_call_eligibility,
)

LIVE_CALL_STATES = ("ringing", "connecting", "active")


def policy_from(settings: Settings) -> EligibilityPolicy:
    return EligibilityPolicy(
        activity_window=timedelta(days=settings.eligibility_activity_window_days),
        call_attempt_limit=settings.call_attempt_limit,
    )


async def user_snapshot(session: AsyncSession, user: User) -> UserSnapshot:
    open_violations = await session.scalar(
        select(func.count())
        .select_from(Violation)
        .where(Violation.user_id == user.id, Violation.released_at.is_(None))
    )
    return UserSnapshot(
        id=user.id,
        role=cast(Role, user.role),
        business_program=cast(BusinessProgramStatus, user.business_program),
        vid=user.vid,
        # A violation verdict here restricts the account just like the host's flag.
        restricted=user.restricted or bool(open_violations),
    )


async def _count_live(
    session: AsyncSession, *conditions: ColumnElement[bool], exclude: str | None
) -> int:
    query = select(func.count()).select_from(Call).where(Call.state.in_(LIVE_CALL_STATES))
    for condition in conditions:
        query = query.where(condition)
    if exclude is not None:
        query = query.where(Call.id != exclude)
    return int(await session.scalar(query) or 0)


async def thread_snapshot(
    session: AsyncSession,
    thread: Thread,
    *,
    now: datetime,
    settings: Settings,
    exclude_call_id: str | None = None,
) -> ThreadSnapshot:
    blocked = await session.get(Block, (thread.buyer_id, thread.seller_id)) is not None
    window_start = now - timedelta(minutes=settings.call_attempt_window_minutes)
    attempts = await session.scalar(
        select(func.count())
        .select_from(Call)
        .where(Call.thread_id == thread.id, Call.created_at >= window_start)
    )
    seller, buyer = thread.seller_id, thread.buyer_id
    return ThreadSnapshot(
        id=thread.id,
        seller_id=seller,
        buyer_id=buyer,
        initiated_by="buyer" if thread.initiated_by == "buyer" else "seller",
        state=cast(ThreadState, thread.state),
        order_placed=thread.order_placed,
        last_buyer_activity_at=thread.last_buyer_activity_at,
        buyer_blocked_seller=blocked,
        live_calls_on_thread=await _count_live(
            session, Call.thread_id == thread.id, exclude=exclude_call_id
        ),
        live_calls_for_seller=await _count_live(
            session,
            or_(Call.seller_id == seller, Call.buyer_id == seller),
            exclude=exclude_call_id,
        ),
        live_calls_for_buyer=await _count_live(
            session,
            or_(Call.seller_id == buyer, Call.buyer_id == buyer),
            exclude=exclude_call_id,
        ),
        recent_call_attempts=int(attempts or 0),
    )


async def eligibility_context(
    session: AsyncSession,
    *,
    caller: User,
    thread: Thread,
    now: datetime,
    settings: Settings,
    exclude_call_id: str | None = None,
) -> EligibilityContext:
    seller = await session.get(User, thread.seller_id)
    buyer = await session.get(User, thread.buyer_id)
    if seller is None or buyer is None:  # foreign keys make this unreachable
        raise LookupError(f"thread {thread.id} references a missing user")
    return EligibilityContext(
        caller=await user_snapshot(session, caller),
        seller=await user_snapshot(session, seller),
        buyer=await user_snapshot(session, buyer),
        thread=await thread_snapshot(
            session, thread, now=now, settings=settings, exclude_call_id=exclude_call_id
        ),
        now=now,
        policy=policy_from(settings),
    )


async def decide_start(
    session: AsyncSession, *, caller: User, thread: Thread, now: datetime, settings: Settings
) -> EligibilityDecision:
    ctx = await eligibility_context(
        session, caller=caller, thread=thread, now=now, settings=settings
    )
    return call_eligibility(ctx)


async def decide_ongoing(
    session: AsyncSession, *, call: Call, thread: Thread, now: datetime, settings: Settings
) -> EligibilityDecision:
    seller = await session.get(User, call.seller_id)
    if seller is None:
        raise LookupError(f"call {call.id} references a missing seller")
    ctx = await eligibility_context(
        session, caller=seller, thread=thread, now=now, settings=settings, exclude_call_id=call.id
    )
    return ongoing_call_eligibility(ctx)
