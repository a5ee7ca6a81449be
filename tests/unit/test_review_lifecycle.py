"""The review lifecycle's pure rules: one test per rule and per reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recorder.retention import ReviewVerdict
from recorder.sampling import RiskSignals
from server.review.lifecycle import (
    NOT_DECIDED,
    NOT_DRAWN,
    NOTHING_RECORDED,
    QUEUED,
    SAMPLED,
    CaseState,
    RecordingFacts,
    Refusal,
    ReviewFacts,
    ReviewRefused,
    VerdictFacts,
    claim_holder,
    decide_claim,
    decide_release,
    decide_verdict,
    hold_for_new_recording,
    retention_facts,
    review_requirement,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CLAIM = timedelta(minutes=30)
OPEN = CaseState(in_queue=True, seller_id="sam", buyer_id="bea")
CLAIMED = CaseState(
    in_queue=True, seller_id="sam", buyer_id="bea", reviewer_id="rev1", claim_expires_at=NOW + CLAIM
)


def refusal(excinfo: pytest.ExceptionInfo[ReviewRefused]) -> Refusal:
    return excinfo.value.refusal


# ---------------------------------------------------------------- review required


def test_a_drawn_call_with_recordings_is_reviewed_as_sampled() -> None:
    decision = review_requirement(ReviewFacts(RiskSignals(), drawn=True, recordings=2))
    assert (decision.required, decision.reasons) == (True, (SAMPLED,))


def test_recordings_waiting_for_their_upload_count_as_recorded() -> None:
    # The shell counts pending_upload rows: a storage outage does not hide a drawn call.
    decision = review_requirement(ReviewFacts(RiskSignals(), drawn=True, recordings=1))
    assert decision.required


def test_a_drawn_call_with_nothing_recorded_is_not_reviewed() -> None:
    decision = review_requirement(ReviewFacts(RiskSignals(), drawn=True, recordings=0))
    assert (decision.required, decision.reasons) == (False, (NOTHING_RECORDED,))


def test_a_call_not_drawn_is_not_reviewed() -> None:
    decision = review_requirement(ReviewFacts(RiskSignals(), drawn=False, recordings=2))
    assert (decision.required, decision.reasons) == (False, (NOT_DRAWN,))


def test_no_draw_yet_says_so() -> None:
    decision = review_requirement(ReviewFacts(RiskSignals(), drawn=None, recordings=0))
    assert decision.reasons == (NOT_DECIDED,)


def test_risk_signals_make_review_mandatory_even_with_nothing_recorded() -> None:
    signals = RiskSignals(contact_details_in_chat=True, reported_by_participant=True)
    decision = review_requirement(ReviewFacts(signals, drawn=False, recordings=0))
    assert decision.required
    assert decision.mandatory_reasons == ("contact_details_in_chat", "reported_by_participant")
    assert decision.reasons == decision.mandatory_reasons


def test_known_reasons_are_merged_never_dropped() -> None:
    facts = ReviewFacts(
        RiskSignals(contact_details_in_chat=True),
        drawn=True,
        recordings=1,
        known_reasons=("reported_by_participant",),
    )
    decision = review_requirement(facts)
    assert decision.mandatory_reasons == ("contact_details_in_chat", "reported_by_participant")
    assert decision.reasons == (*decision.mandatory_reasons, SAMPLED)


def test_a_queued_call_never_leaves_the_queue() -> None:
    facts = ReviewFacts(RiskSignals(), drawn=False, recordings=0, already_required=True)
    assert review_requirement(facts).reasons == (QUEUED,)


# ---------------------------------------------------------------- claims


def test_a_free_call_can_be_claimed() -> None:
    decision = decide_claim(OPEN, "rev1", NOW, CLAIM)
    assert (decision.reviewer_id, decision.expires_at, decision.renewed) == (
        "rev1",
        NOW + CLAIM,
        False,
    )


def test_the_holder_renews_its_claim() -> None:
    assert decide_claim(CLAIMED, "rev1", NOW + timedelta(minutes=5), CLAIM).renewed


def test_another_reviewers_claim_is_refused() -> None:
    with pytest.raises(ReviewRefused) as excinfo:
        decide_claim(CLAIMED, "rev2", NOW, CLAIM)
    assert refusal(excinfo) is Refusal.CLAIMED_BY_OTHER


def test_an_expired_claim_is_free() -> None:
    later = NOW + CLAIM
    assert claim_holder("rev1", NOW + CLAIM, later) is None
    assert decide_claim(CLAIMED, "rev2", later, CLAIM).reviewer_id == "rev2"


def test_no_claim_outside_the_queue_or_after_the_verdict() -> None:
    with pytest.raises(ReviewRefused) as excinfo:
        decide_claim(CaseState(False, "sam", "bea"), "rev1", NOW, CLAIM)
    assert refusal(excinfo) is Refusal.NOT_IN_QUEUE
    reviewed = CaseState(True, "sam", "bea", verdict="clean")
    with pytest.raises(ReviewRefused) as excinfo:
        decide_claim(reviewed, "rev1", NOW, CLAIM)
    assert refusal(excinfo) is Refusal.ALREADY_REVIEWED


# ---------------------------------------------------------------- verdicts


def test_a_clean_verdict_by_the_holder() -> None:
    decision = decide_verdict(CLAIMED, "rev1", "clean", None, NOW)
    assert (decision.verdict, decision.violation_subject, decision.hold) == ("clean", None, None)


def test_a_violation_names_its_subject_and_holds_the_recordings() -> None:
    decision = decide_verdict(CLAIMED, "rev1", "off_platform_contact", "sam", NOW)
    assert (decision.violation_subject, decision.hold) == ("sam", "violation")


@pytest.mark.parametrize("subject", [None, "rev1", "someone-else"])
def test_a_violation_needs_a_participant_as_subject(subject: str | None) -> None:
    with pytest.raises(ReviewRefused) as excinfo:
        decide_verdict(CLAIMED, "rev1", "abusive", subject, NOW)
    assert refusal(excinfo) is Refusal.SUBJECT_REQUIRED


def test_a_verdict_needs_the_claim() -> None:
    for who, when in (("rev2", NOW), ("rev1", NOW + CLAIM)):
        with pytest.raises(ReviewRefused) as excinfo:
            decide_verdict(CLAIMED, who, "clean", None, when)
        assert refusal(excinfo) is Refusal.CLAIM_REQUIRED


def test_a_second_verdict_is_refused() -> None:
    reviewed = CaseState(True, "sam", "bea", "rev1", NOW + CLAIM, verdict="clean")
    with pytest.raises(ReviewRefused) as excinfo:
        decide_verdict(reviewed, "rev1", "abusive", "sam", NOW)
    assert refusal(excinfo) is Refusal.ALREADY_REVIEWED


# ---------------------------------------------------------------- holds and retention


def test_a_recording_stored_after_a_violation_verdict_is_held() -> None:
    assert hold_for_new_recording("abusive") == "violation"
    assert hold_for_new_recording("clean") == "none"
    assert hold_for_new_recording(None) == "none"


def test_only_a_violation_hold_can_be_released() -> None:
    assert decide_release("violation") == "released"
    for hold in ("none", "released"):
        with pytest.raises(ReviewRefused) as excinfo:
            decide_release(hold)
        assert refusal(excinfo) is Refusal.NOT_HELD


def test_retention_facts_follow_the_review() -> None:
    rec = RecordingFacts(created_at=NOW, hold="none", released_at=None)
    assert retention_facts(rec, False, None).verdict is None
    assert retention_facts(rec, True, None).sampled is True
    clean = retention_facts(rec, True, VerdictFacts("clean", NOW))
    assert (clean.verdict, clean.verdict_at) == (ReviewVerdict.CLEAN, NOW)
    violation = retention_facts(rec, True, VerdictFacts("abusive", NOW))
    assert violation.verdict is ReviewVerdict.VIOLATION
    # A hold keeps the violation clock whatever the verdict field says.
    released = RecordingFacts(created_at=NOW, hold="released", released_at=NOW)
    facts = retention_facts(released, True, VerdictFacts("other", NOW))
    assert (facts.verdict, facts.released_at) == (ReviewVerdict.VIOLATION, NOW)
