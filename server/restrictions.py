"""An admin's answers to a violation: lift the restriction it put on a person, release the
hold it put on the call's recordings. Each with a reason, audited, in the caller's
transaction; lifting tells the host marketplace (``user.unrestricted``).

The two are separate on purpose: forgiving a person does not destroy the evidence, and
releasing the evidence to retention does not by itself let the person call again.
The host's own ``restricted`` flag belongs to the host: nothing here changes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit import audit
from server.db.models import Recording, User, Violation
from server.webhooks import events as webhook_events


class RestrictionError(Exception):
    """The change asked for does not apply (translated to 409 at the HTTP edge)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ViolationFacts:
    violation: Violation
    recordings_held: int


@dataclass(frozen=True, slots=True)
class RestrictionFacts:
    user_id: str
    host_restricted: bool
    violations: list[ViolationFacts]

    @property
    def open_violations(self) -> list[Violation]:
        return [v.violation for v in self.violations if v.violation.released_at is None]

    @property
    def restricted(self) -> bool:
        """As eligibility sees it: the host's flag, or a violation not lifted."""
        return self.host_restricted or bool(self.open_violations)


async def violation_facts(session: AsyncSession, violation: Violation) -> ViolationFacts:
    held = await session.scalar(
        select(func.count())
        .select_from(Recording)
        .where(Recording.call_id == violation.call_id, Recording.hold == "violation")
    )
    return ViolationFacts(violation, int(held or 0))


async def restriction_facts(session: AsyncSession, user: User) -> RestrictionFacts:
    violations = (
        await session.scalars(
            select(Violation).where(Violation.user_id == user.id).order_by(Violation.id)
        )
    ).all()
    return RestrictionFacts(
        user_id=user.id,
        host_restricted=user.restricted,
        violations=[await violation_facts(session, v) for v in violations],
    )


async def lift_restriction(
    session: AsyncSession, user: User, *, actor_id: str, reason: str, now: datetime
) -> RestrictionFacts:
    """Lift every open violation's restriction of ``user``; the recordings stay held."""
    facts = await restriction_facts(session, user)
    lifted = facts.open_violations
    if not lifted:
        if facts.host_restricted:
            raise RestrictionError(
                "restricted_by_host",
                "Only the host marketplace's restricted flag restricts this account; "
                "the host lifts it.",
            )
        raise RestrictionError("not_restricted", "This account is not restricted.")
    for violation in lifted:
        violation.released_at = now
    audit(
        session,
        actor_id=actor_id,
        action="user.lift_restriction",
        target_type="user",
        target_id=user.id,
        reason=reason,
        violation_ids=[v.id for v in lifted],
        host_restricted=facts.host_restricted,
    )
    webhook_events.user_unrestricted(
        session,
        user_id=user.id,
        violation_call_ids=[v.call_id for v in lifted],
        host_restricted=facts.host_restricted,
    )
    return await restriction_facts(session, user)


async def release_violation_hold(
    session: AsyncSession, violation: Violation, *, actor_id: str, reason: str, now: datetime
) -> ViolationFacts:
    """Release the hold on the violation's recordings: retention counts from now."""
    held = (
        await session.scalars(
            select(Recording)
            .where(Recording.call_id == violation.call_id, Recording.hold == "violation")
            .with_for_update()
        )
    ).all()
    if not held:
        raise RestrictionError("not_held", "No recording of this call is held any more.")
    for recording in held:
        recording.hold = "released"
        recording.hold_released_at = now
    audit(
        session,
        actor_id=actor_id,
        action="violation.release_hold",
        target_type="violation",
        target_id=str(violation.id),
        reason=reason,
        call_id=violation.call_id,
        user_id=violation.user_id,
        recording_ids=[r.id for r in held],
    )
    await session.flush()
    return await violation_facts(session, violation)
