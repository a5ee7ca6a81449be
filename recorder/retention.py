"""How long a recording is kept (DESIGN.md section 6), as a pure function.

The database side loads a recording's facts, asks ``retention_decision`` and acts on the
answer (the purge job deletes, writes the audit entry). No I/O here; the clock is an
argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class ReviewVerdict(StrEnum):
    CLEAN = "clean"
    VIOLATION = "violation"


class RetentionReason(StrEnum):
    UNSAMPLED_WITHIN_RETENTION = "unsampled_within_retention"
    UNSAMPLED_EXPIRED = "unsampled_expired"
    AWAITING_REVIEW = "awaiting_review"
    CLEAN_WITHIN_RETENTION = "clean_within_retention"
    CLEAN_EXPIRED = "clean_expired"
    VIOLATION_HELD = "violation_held"
    VIOLATION_RELEASED_WITHIN_RETENTION = "violation_released_within_retention"
    VIOLATION_RELEASED_EXPIRED = "violation_released_expired"


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    unsampled_days: int = 30
    reviewed_clean_days: int = 30  # counted from the verdict
    released_violation_days: int = 30  # counted from the admin's release

    def __post_init__(self) -> None:
        for name in ("unsampled_days", "reviewed_clean_days", "released_violation_days"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


@dataclass(frozen=True, slots=True)
class RecordingRetentionFacts:
    """What retention depends on; all times timezone-aware.

    ``verdict_at`` is required with a verdict; ``released_at`` is when an admin released
    a violation hold (meaningless for other verdicts).
    """

    created_at: datetime
    sampled: bool
    verdict: ReviewVerdict | None = None
    verdict_at: datetime | None = None
    released_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RetentionDecision:
    keep: bool
    reason: RetentionReason
    # When the recording becomes deletable if nothing else changes; None while held.
    delete_after: datetime | None

    @property
    def delete(self) -> bool:
        return not self.keep


def _aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def retention_decision(
    facts: RecordingRetentionFacts, now: datetime, settings: RetentionSettings
) -> RetentionDecision:
    """Keep or delete a recording at ``now``, with the reason."""
    _aware("now", now)
    _aware("created_at", facts.created_at)
    if facts.verdict is not None and facts.verdict_at is None:
        raise ValueError(f"a {facts.verdict.value} verdict needs its time (verdict_at)")
    for name in ("verdict_at", "released_at"):
        value = getattr(facts, name)
        if value is not None:
            _aware(name, value)

    if facts.verdict is ReviewVerdict.VIOLATION:
        if facts.released_at is None:
            return RetentionDecision(True, RetentionReason.VIOLATION_HELD, None)
        return _by_deadline(
            now,
            facts.released_at + timedelta(days=settings.released_violation_days),
            RetentionReason.VIOLATION_RELEASED_WITHIN_RETENTION,
            RetentionReason.VIOLATION_RELEASED_EXPIRED,
        )
    if facts.verdict is ReviewVerdict.CLEAN:
        assert facts.verdict_at is not None
        return _by_deadline(
            now,
            facts.verdict_at + timedelta(days=settings.reviewed_clean_days),
            RetentionReason.CLEAN_WITHIN_RETENTION,
            RetentionReason.CLEAN_EXPIRED,
        )
    if facts.sampled:
        # Sampled calls wait for their reviewer however long the queue is.
        return RetentionDecision(True, RetentionReason.AWAITING_REVIEW, None)
    return _by_deadline(
        now,
        facts.created_at + timedelta(days=settings.unsampled_days),
        RetentionReason.UNSAMPLED_WITHIN_RETENTION,
        RetentionReason.UNSAMPLED_EXPIRED,
    )


def _by_deadline(
    now: datetime, deadline: datetime, keep: RetentionReason, expired: RetentionReason
) -> RetentionDecision:
    if now >= deadline:
        return RetentionDecision(False, expired, deadline)
    return RetentionDecision(True, keep, deadline)
