"""The shell of the review lifecycle: loads a call's facts, asks ``server.review.lifecycle``
and applies its decision — the only code that writes a call's review fields, claims,
verdicts, violations and recording holds.

Races are settled by the database, on SQLite and PostgreSQL alike: a review row is created
with ``INSERT ... ON CONFLICT DO NOTHING`` (two first claims cannot collide), and every
change to it is a conditional update on its version (``Review.version``, SQLAlchemy's
``version_id_col``): a request that decided on a state someone changed meanwhile loses the
update, reloads and decides again, so a second verdict meets ``already_reviewed``. A unique
(call, subject) index on violations backs this up.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased
from sqlalchemy.orm.exc import StaleDataError

from recorder.retention import RecordingRetentionFacts
from recorder.sampling import ReviewSampler, RiskSignals
from server.audit import audit
from server.clock import utcnow
from server.db.models import Call, Recording, Review, User, Violation
from server.eligibility_watch import EligibilityWatch
from server.policy import effective_policy
from server.review.lifecycle import (
    CaseState,
    RecordingFacts,
    Refusal,
    ReviewFacts,
    ReviewRefused,
    ReviewRequirement,
    VerdictFacts,
    decide_claim,
    decide_release,
    decide_verdict,
    hold_for_new_recording,
    retention_facts,
    review_requirement,
)
from server.settings import Settings
from server.webhooks import events as webhook_events

log = logging.getLogger(__name__)

# A request that keeps losing the conditional update to others gives up with a 409.
MAX_ATTEMPTS = 5
QUEUE_LIMIT = 500

QueueKind = Literal["all", "mandatory", "sampled"]
QueueStatus = Literal["open", "reviewed", "all"]


def sampling_key(settings: Settings) -> bytes:
    """The draw's key: derived from the secret key and named by the key id, so a draw is
    reproducible for audit by whoever holds the secret, and unpredictable to users."""
    secret = settings.secret_key.get_secret_value().encode()
    return hmac.new(
        secret, b"review-sampling:" + settings.review_sample_key_id.encode(), hashlib.sha256
    ).digest()


async def decide_review(session: AsyncSession, call: Call, settings: Settings) -> ReviewRequirement:
    """Inputs "call ended", "recordings stored or waiting for upload", "report filed":
    draw the call's review sample (once) and mark it for review when drawn or mandatory.

    Runs inside the caller's transaction, on a row it locked (``with_for_update``).
    """
    if call.sampled is None:
        policy = await effective_policy(session, settings)
        sampler = ReviewSampler(
            rate=policy.review_sample_rate,
            key_id=settings.review_sample_key_id,
            secret=sampling_key(settings),
        )
        draw = sampler.decide(call.id)
        call.sample_rate = draw.rate
        call.sample_key_id = draw.key_id
        call.sample_draw = draw.draw
        call.sampled = draw.drawn
    recorded = await session.scalar(
        select(func.count()).select_from(Recording).where(Recording.call_id == call.id)
    )
    requirement = review_requirement(
        ReviewFacts(
            signals=RiskSignals(
                contact_details_in_chat=call.contact_details_detected,
                reported_by_participant=call.reported,
            ),
            drawn=call.sampled,
            recordings=int(recorded or 0),
            known_reasons=tuple(call.mandatory_reasons or ()),
            already_required=call.review_required,
        )
    )
    call.mandatory_reasons = list(requirement.mandatory_reasons)
    call.review_required = requirement.required
    return requirement


async def hold_for_recording(session: AsyncSession, call_id: str) -> str:
    """The hold a recording stored now gets: the call's, if a violation was recorded."""
    verdict = await session.scalar(select(Review.verdict).where(Review.call_id == call_id))
    return hold_for_new_recording(verdict)


async def retention_facts_of(
    session: AsyncSession, recording: Recording, call: Call
) -> RecordingRetentionFacts:
    """Retention's inputs for one recording, from its call's review."""
    review = await session.get(Review, call.id)
    return retention_facts(
        RecordingFacts(recording.created_at, recording.hold, recording.hold_released_at),
        call.review_required,
        VerdictFacts(review.verdict, review.verdict_at) if review else None,
    )


@dataclass(frozen=True, slots=True)
class QueueRow:
    call: Call
    review: Review | None
    seller: User
    buyer: User


@dataclass(frozen=True, slots=True)
class VerdictOutcome:
    review: Review
    restricted_user_id: str | None


class ReviewLifecycle:
    """Claims, verdicts, releases and the queue, each in its own transaction."""

    def __init__(
        self,
        settings: Settings,
        db: async_sessionmaker[AsyncSession],
        eligibility_watch: EligibilityWatch,
    ) -> None:
        self._settings = settings
        self._db = db
        self._watch = eligibility_watch

    async def queue(
        self,
        *,
        kind: QueueKind,
        status: QueueStatus,
        min_age: timedelta,
        max_age: timedelta | None,
        now: datetime,
    ) -> list[QueueRow]:
        """Every filter runs in SQL, before the limit: the oldest matching calls first."""
        seller, buyer = aliased(User), aliased(User)
        query = (
            select(Call, Review, seller, buyer)
            .outerjoin(Review, Review.call_id == Call.id)
            .join(seller, seller.id == Call.seller_id)
            .join(buyer, buyer.id == Call.buyer_id)
            .where(Call.review_required.is_(True), Call.created_at <= now - min_age)
            .order_by(Call.created_at, Call.id)
            .limit(QUEUE_LIMIT)
        )
        if max_age is not None:
            query = query.where(Call.created_at >= now - max_age)
        if kind == "mandatory":
            # The reasons are a JSON list; both SQLite and PostgreSQL know its length.
            query = query.where(func.json_array_length(Call.mandatory_reasons) > 0)
        elif kind == "sampled":
            query = query.where(Call.sampled.is_(True))
        if status == "open":
            query = query.where(or_(Review.verdict.is_(None), Review.call_id.is_(None)))
        elif status == "reviewed":
            query = query.where(Review.verdict.isnot(None))
        async with self._db() as session:
            rows = (await session.execute(query)).all()
        return [QueueRow(call, review, s, b) for call, review, s, b in rows]

    async def claim(self, call_id: str, reviewer_id: str) -> Review:
        """Input "claim": one reviewer at a time; the holder renews; expired claims are free."""
        claim_for = timedelta(minutes=self._settings.review_claim_minutes)
        for _ in range(MAX_ATTEMPTS):
            now = utcnow()
            try:
                async with self._db() as session, session.begin():
                    call = await session.get(Call, call_id)
                    if call is not None and call.review_required:
                        await _ensure_review_row(session, call_id)
                    review = await session.get(Review, call_id) if call is not None else None
                    decision = decide_claim(_case(call, review), reviewer_id, now, claim_for)
                    assert review is not None  # a call in the queue has its row now
                    review.reviewer_id = decision.reviewer_id
                    review.claimed_at = decision.claimed_at
                    review.claim_expires_at = decision.expires_at
                    await session.flush()  # the conditional update: StaleDataError if lost
                    audit(
                        session,
                        actor_id=reviewer_id,
                        action="review.claim",
                        target_type="call",
                        target_id=call_id,
                    )
                return review
            except StaleDataError:
                continue  # someone changed the review meanwhile: decide again on fresh facts
        raise _changed_meanwhile()

    async def submit_verdict(
        self,
        call_id: str,
        reviewer_id: str,
        verdict: str,
        notes: str,
        subject_id: str | None,
    ) -> VerdictOutcome:
        """Input "verdict": once per call, by the claim's holder. A violation is recorded
        against its subject (restricting them), and holds every recording of the call."""
        for _ in range(MAX_ATTEMPTS):
            now = utcnow()
            try:
                async with self._db() as session, session.begin():
                    call = await session.get(Call, call_id)
                    review = await session.get(Review, call_id) if call is not None else None
                    decision = decide_verdict(
                        _case(call, review), reviewer_id, verdict, subject_id, now
                    )
                    assert review is not None  # holding the claim means the row exists
                    review.verdict = decision.verdict
                    review.notes = notes
                    review.verdict_at = decision.at
                    review.claim_expires_at = decision.at
                    await session.flush()  # the conditional update: StaleDataError if lost
                    if decision.violation_subject is not None and decision.hold is not None:
                        session.add(
                            Violation(
                                user_id=decision.violation_subject,
                                call_id=call_id,
                                verdict=decision.verdict,
                                created_at=now,
                            )
                        )
                        await session.execute(
                            update(Recording)
                            .where(Recording.call_id == call_id)
                            .values(hold=decision.hold)
                        )
                    audit(
                        session,
                        actor_id=reviewer_id,
                        action="review.verdict",
                        target_type="call",
                        target_id=call_id,
                        verdict=decision.verdict,
                        subject_user_id=decision.violation_subject,
                    )
                    webhook_events.review_verdict(
                        session,
                        call_id=call_id,
                        verdict=decision.verdict,
                        reviewer_id=reviewer_id,
                        subject_user_id=decision.violation_subject,
                        violation=decision.violation_subject is not None,
                    )
                break
            except (StaleDataError, IntegrityError) as exc:
                # Lost to a concurrent verdict (the version moved, or the unique violation
                # index refused a second one): decide again, which now answers 409.
                log.info(
                    "call %s: verdict lost a race (%s); deciding again", call_id, type(exc).__name__
                )
                continue
        else:
            raise _changed_meanwhile()
        if decision.violation_subject is not None:
            # The subject's account is restricted now: their live calls end as ineligible.
            await self._watch.changed(user_ids=[decision.violation_subject])
        return VerdictOutcome(review, decision.violation_subject)


def release_hold(recording: Recording, now: datetime) -> None:
    """Input "release": an admin lifts a recording's violation hold (the caller audits)."""
    recording.hold = decide_release(recording.hold)
    recording.hold_released_at = now


def _case(call: Call | None, review: Review | None) -> CaseState:
    if call is None:
        return CaseState(in_queue=False, seller_id="", buyer_id="")
    return CaseState(
        in_queue=call.review_required,
        seller_id=call.seller_id,
        buyer_id=call.buyer_id,
        reviewer_id=review.reviewer_id if review else None,
        claim_expires_at=review.claim_expires_at if review else None,
        verdict=review.verdict if review else None,
    )


async def _ensure_review_row(session: AsyncSession, call_id: str) -> None:
    """Create the call's review row unless it exists: two first claims cannot collide."""
    dialect = session.get_bind().dialect.name
    values: dict[str, Any] = {"call_id": call_id, "notes": "", "version": 1}
    statement: Any
    if dialect == "postgresql":
        statement = postgresql.insert(Review).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(Review).values(values).on_conflict_do_nothing()
    else:  # pragma: no cover - the service runs on SQLite and PostgreSQL only
        raise RuntimeError(f"unsupported database {dialect!r}")
    await session.execute(statement)


def _changed_meanwhile() -> ReviewRefused:
    return ReviewRefused(
        Refusal.CHANGED_MEANWHILE, "This review changed while you sent this; reload and retry."
    )
