"""Rows to API models."""

from __future__ import annotations

from server.api.schemas import (
    EligibilityOut,
    MessageCall,
    MessageOut,
    ReasonOut,
    ThreadOut,
    ThreadSummary,
    UserOut,
)
from server.db.models import Message, Thread, User
from signaling.eligibility import EligibilityDecision


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        role=user.role,
        display_name=user.display_name,
        business_program=user.business_program,
        vid=user.vid,
        restricted=user.restricted,
    )


def message_out(message: Message, *, call: MessageCall | None = None) -> MessageOut:
    return MessageOut(
        id=message.id,
        thread_id=message.thread_id,
        sender_id=message.sender_id,
        kind=message.kind,
        text=message.text,
        flags=list(message.flags or []),
        joins=list(message.joins_message_ids or []),
        call_id=message.call_id,
        created_at=message.created_at,
        call=call,
    )


def thread_out(thread: Thread) -> ThreadOut:
    return ThreadOut(
        id=thread.id,
        seller_id=thread.seller_id,
        buyer_id=thread.buyer_id,
        subject=thread.subject,
        initiated_by=thread.initiated_by,
        state=thread.state,
        order_placed=thread.order_placed,
        last_buyer_activity_at=thread.last_buyer_activity_at,
    )


def thread_summary(thread: Thread, seller: User, buyer: User, blocked: bool) -> ThreadSummary:
    return ThreadSummary(
        id=thread.id,
        subject=thread.subject,
        seller=user_out(seller),
        buyer=user_out(buyer),
        initiated_by=thread.initiated_by,
        state=thread.state,
        order_placed=thread.order_placed,
        last_buyer_activity_at=thread.last_buyer_activity_at,
        blocked_by_buyer=blocked,
    )


def eligibility_out(decision: EligibilityDecision) -> EligibilityOut:
    return EligibilityOut(
        allowed=decision.allowed,
        reasons=[ReasonOut(code=r.code.value, message=r.message) for r in decision.reasons],
    )
