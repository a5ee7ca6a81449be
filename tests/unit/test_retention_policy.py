"""Retention: every class of recording, on a moved clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recorder.retention import (
    RecordingRetentionFacts,
    RetentionReason,
    RetentionSettings,
    ReviewVerdict,
    retention_decision,
)

CREATED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SETTINGS = RetentionSettings(unsampled_days=30, reviewed_clean_days=60, released_violation_days=7)
SECOND = timedelta(seconds=1)


def test_defaults() -> None:
    assert RetentionSettings().unsampled_days == 30


def test_unsampled_kept_for_the_retention_period_then_deleted() -> None:
    facts = RecordingRetentionFacts(created_at=CREATED, sampled=False)
    deadline = CREATED + timedelta(days=30)
    for now in (CREATED, CREATED + timedelta(days=29), deadline - SECOND):
        decision = retention_decision(facts, now, SETTINGS)
        assert (decision.keep, decision.reason) == (
            True,
            RetentionReason.UNSAMPLED_WITHIN_RETENTION,
        )
        assert decision.delete_after == deadline
    for now in (deadline, deadline + timedelta(days=400)):
        decision = retention_decision(facts, now, SETTINGS)
        assert (decision.delete, decision.reason) == (True, RetentionReason.UNSAMPLED_EXPIRED)


def test_default_unsampled_retention_is_thirty_days() -> None:
    facts = RecordingRetentionFacts(created_at=CREATED, sampled=False)
    settings = RetentionSettings()
    assert retention_decision(facts, CREATED + timedelta(days=30) - SECOND, settings).keep
    assert not retention_decision(facts, CREATED + timedelta(days=30), settings).keep


def test_sampled_awaiting_review_is_kept_however_long_it_waits() -> None:
    facts = RecordingRetentionFacts(created_at=CREATED, sampled=True)
    for days in (0, 31, 3650):
        decision = retention_decision(facts, CREATED + timedelta(days=days), SETTINGS)
        assert (decision.keep, decision.reason) == (True, RetentionReason.AWAITING_REVIEW)
        assert decision.delete_after is None


def test_reviewed_clean_counts_from_the_verdict() -> None:
    verdict_at = CREATED + timedelta(days=45)  # reviewed after the unsampled period
    facts = RecordingRetentionFacts(
        created_at=CREATED, sampled=True, verdict=ReviewVerdict.CLEAN, verdict_at=verdict_at
    )
    deadline = verdict_at + timedelta(days=60)
    kept = retention_decision(facts, deadline - SECOND, SETTINGS)
    assert (kept.keep, kept.reason, kept.delete_after) == (
        True,
        RetentionReason.CLEAN_WITHIN_RETENTION,
        deadline,
    )
    gone = retention_decision(facts, deadline, SETTINGS)
    assert (gone.keep, gone.reason) == (False, RetentionReason.CLEAN_EXPIRED)


def test_violation_is_held_until_released() -> None:
    facts = RecordingRetentionFacts(
        created_at=CREATED,
        sampled=True,
        verdict=ReviewVerdict.VIOLATION,
        verdict_at=CREATED + timedelta(days=2),
    )
    for days in (0, 100, 36500):
        decision = retention_decision(facts, CREATED + timedelta(days=days), SETTINGS)
        assert (decision.keep, decision.reason) == (True, RetentionReason.VIOLATION_HELD)
        assert decision.delete_after is None


def test_released_violation_follows_the_release() -> None:
    released = CREATED + timedelta(days=200)
    facts = RecordingRetentionFacts(
        created_at=CREATED,
        sampled=True,
        verdict=ReviewVerdict.VIOLATION,
        verdict_at=CREATED + timedelta(days=2),
        released_at=released,
    )
    deadline = released + timedelta(days=7)
    kept = retention_decision(facts, deadline - SECOND, SETTINGS)
    assert (kept.keep, kept.reason) == (True, RetentionReason.VIOLATION_RELEASED_WITHIN_RETENTION)
    gone = retention_decision(facts, deadline, SETTINGS)
    assert (gone.keep, gone.reason, gone.delete_after) == (
        False,
        RetentionReason.VIOLATION_RELEASED_EXPIRED,
        deadline,
    )


def test_a_verdict_overrides_an_unsampled_flag() -> None:
    # Reviewed anyway (e.g. an admin opened it): the verdict's rule applies.
    facts = RecordingRetentionFacts(
        created_at=CREATED,
        sampled=False,
        verdict=ReviewVerdict.VIOLATION,
        verdict_at=CREATED + timedelta(days=1),
    )
    assert retention_decision(facts, CREATED + timedelta(days=90), SETTINGS).keep


def test_zero_days_deletes_at_once() -> None:
    settings = RetentionSettings(unsampled_days=0)
    facts = RecordingRetentionFacts(created_at=CREATED, sampled=False)
    assert retention_decision(facts, CREATED, settings).delete


def test_invalid_inputs_are_refused() -> None:
    naive = datetime(2026, 3, 1, 12, 0)
    with pytest.raises(ValueError, match="timezone"):
        retention_decision(RecordingRetentionFacts(naive, False), CREATED, SETTINGS)
    with pytest.raises(ValueError, match="timezone"):
        retention_decision(RecordingRetentionFacts(CREATED, False), naive, SETTINGS)
    with pytest.raises(ValueError, match="verdict_at"):
        retention_decision(
            RecordingRetentionFacts(CREATED, True, verdict=ReviewVerdict.CLEAN), CREATED, SETTINGS
        )
    with pytest.raises(ValueError):
        RetentionSettings(unsampled_days=-1)
