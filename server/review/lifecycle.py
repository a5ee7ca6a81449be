"""A call's review lifecycle as pure rules: the one place that decides (STYLE.md 13).

Inputs, each a fact the shell (``server.review.service``) loads from the database:
the call ended (with its risk signals and the sampling draw), recordings stored or still
waiting for their upload, a report filed, a claim, a verdict, an admin's release of a hold.
Outputs, each a decision with its reasons: whether the call must be reviewed and why, who
holds the claim, what a verdict does (a violation against whom, holds on the recordings),
and the facts retention decides on. No I/O, no clock: ``now`` is an argument.

A refusal is a ``ReviewRefused`` naming the state that caused it; the HTTP edge turns its
code into a status (``REFUSAL_STATUS``), so this module never imports the web layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Literal

from recorder.retention import RecordingRetentionFacts, ReviewVerdict
from recorder.sampling import RiskSignals

Verdict = Literal["clean", "off_platform_contact", "abusive", "other"]
VIOLATION_VERDICTS: Final[frozenset[str]] = frozenset({"off_platform_contact", "abusive"})
Hold = Literal["none", "violation", "released"]

# Why a call is (or is not) in the review queue. Mandatory reasons are the risk codes of
# ``recorder.sampling.MandatoryReviewReason`` (and any future detector's), kept as strings.
SAMPLED: Final = "sampled"
NOT_DRAWN: Final = "not_drawn"
NOTHING_RECORDED: Final = "nothing_recorded"
NOT_DECIDED: Final = "not_decided"
QUEUED: Final = "queued"  # put in the queue earlier; a call never leaves it


class Refusal(StrEnum):
    NOT_IN_QUEUE = "not_in_queue"
    ALREADY_REVIEWED = "already_reviewed"
    CLAIMED_BY_OTHER = "claimed_by_other"
    CLAIM_REQUIRED = "claim_required"
    SUBJECT_REQUIRED = "subject_required"
    NOT_HELD = "not_held"
    CHANGED_MEANWHILE = "review_changed"


class ReviewRefused(Exception):
    """An input the lifecycle refuses in the state it is in."""

    def __init__(self, refusal: Refusal, message: str) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.message = message


# ---------------------------------------------------------------- review required


@dataclass(frozen=True, slots=True)
class ReviewFacts:
    """What decides whether a call is reviewed.

    ``drawn`` is the stored sampling draw (None: not drawn yet); ``recordings`` counts the
    call's recordings that exist, stored or still waiting for their upload; a drawn call
    whose recordings are only staged is reviewed, one with nothing recorded is not.
    ``already_required`` makes the decision sticky: a call never leaves the queue.
    """

    signals: RiskSignals
    drawn: bool | None
    recordings: int
    known_reasons: tuple[str, ...] = ()
    already_required: bool = False


@dataclass(frozen=True, slots=True)
class ReviewRequirement:
    required: bool
    # Why: mandatory reasons and/or ``sampled`` when required; else why not.
    reasons: tuple[str, ...]
    mandatory_reasons: tuple[str, ...]


def review_requirement(facts: ReviewFacts) -> ReviewRequirement:
    # Merged, never dropped: a report may have been stored by a concurrent transaction.
    mandatory = tuple(sorted({*facts.signals.reasons(), *facts.known_reasons}))
    sampled = bool(facts.drawn) and facts.recordings > 0
    reasons = mandatory + ((SAMPLED,) if sampled else ())
    if reasons:
        return ReviewRequirement(True, reasons, mandatory)
    if facts.already_required:
        return ReviewRequirement(True, (QUEUED,), mandatory)
    if facts.drawn is None:
        why = NOT_DECIDED
    elif facts.drawn:
        why = NOTHING_RECORDED  # declined, missed: nothing to review
    else:
        why = NOT_DRAWN
    return ReviewRequirement(False, (why,), mandatory)


# ---------------------------------------------------------------- claims and verdicts


@dataclass(frozen=True, slots=True)
class CaseState:
    """A call's review as stored: in the queue or not, the claim and the verdict."""

    in_queue: bool
    seller_id: str
    buyer_id: str
    reviewer_id: str | None = None
    claim_expires_at: datetime | None = None
    verdict: str | None = None


def claim_holder(reviewer_id: str | None, expires_at: datetime | None, now: datetime) -> str | None:
    """Who holds the claim at ``now``: a claim lapses at its expiry unless renewed."""
    if reviewer_id is None or expires_at is None:
        return None
    return reviewer_id if expires_at > now else None


@dataclass(frozen=True, slots=True)
class ClaimDecision:
    reviewer_id: str
    claimed_at: datetime
    expires_at: datetime
    renewed: bool  # the reviewer already held it


def decide_claim(
    state: CaseState, reviewer_id: str, now: datetime, claim_for: timedelta
) -> ClaimDecision:
    """One reviewer at a time; the holder may renew; an expired claim is free."""
    _check_open(state)
    holder = claim_holder(state.reviewer_id, state.claim_expires_at, now)
    if holder is not None and holder != reviewer_id:
        raise ReviewRefused(Refusal.CLAIMED_BY_OTHER, "Another reviewer is working on this call.")
    return ClaimDecision(reviewer_id, now, now + claim_for, renewed=holder == reviewer_id)


@dataclass(frozen=True, slots=True)
class VerdictDecision:
    verdict: str
    at: datetime
    # The person the violation is recorded against (their account is restricted), and the
    # hold it puts on every recording of the call; None for a clean verdict.
    violation_subject: str | None
    hold: Hold | None


def decide_verdict(
    state: CaseState, reviewer_id: str, verdict: str, subject_id: str | None, now: datetime
) -> VerdictDecision:
    """Once per call, by the reviewer holding the claim; a violation names a participant."""
    _check_open(state)
    if claim_holder(state.reviewer_id, state.claim_expires_at, now) != reviewer_id:
        raise ReviewRefused(Refusal.CLAIM_REQUIRED, "Claim the call before submitting a verdict.")
    if verdict not in VIOLATION_VERDICTS:
        return VerdictDecision(verdict, now, None, None)
    if subject_id not in (state.seller_id, state.buyer_id):
        raise ReviewRefused(Refusal.SUBJECT_REQUIRED, "Say which participant broke the rules.")
    return VerdictDecision(verdict, now, subject_id, "violation")


def _check_open(state: CaseState) -> None:
    if not state.in_queue:
        raise ReviewRefused(Refusal.NOT_IN_QUEUE, "No such call in the review queue.")
    if state.verdict is not None:
        raise ReviewRefused(Refusal.ALREADY_REVIEWED, "This call already has a verdict.")


# ---------------------------------------------------------------- holds and retention


def hold_for_new_recording(verdict: str | None) -> Hold:
    """A recording stored after its call's verdict (a late upload) gets the call's hold."""
    return "violation" if verdict in VIOLATION_VERDICTS else "none"


def decide_release(hold: str) -> Hold:
    """An admin releases a violation hold: retention then counts from the release."""
    if hold != "violation":
        raise ReviewRefused(Refusal.NOT_HELD, "This recording is not held for a violation.")
    return "released"


@dataclass(frozen=True, slots=True)
class RecordingFacts:
    created_at: datetime
    hold: str
    released_at: datetime | None


@dataclass(frozen=True, slots=True)
class VerdictFacts:
    verdict: str | None
    verdict_at: datetime | None


def retention_facts(
    recording: RecordingFacts, review_required: bool, review: VerdictFacts | None
) -> RecordingRetentionFacts:
    """What ``recorder.retention.retention_decision`` needs, from the review's state."""
    verdict = review.verdict if review else None
    kind: ReviewVerdict | None = None
    # A violation hold keeps a recording whatever the verdict field says; a released hold
    # follows the released-violation clock.
    if recording.hold in ("violation", "released") or verdict in VIOLATION_VERDICTS:
        kind = ReviewVerdict.VIOLATION
    elif verdict is not None:
        kind = ReviewVerdict.CLEAN
    return RecordingRetentionFacts(
        created_at=recording.created_at,
        sampled=review_required,
        verdict=kind,
        verdict_at=review.verdict_at if review else None,
        released_at=recording.released_at,
    )
