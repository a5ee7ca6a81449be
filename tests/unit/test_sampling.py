"""ReviewSampler: a reproducible, keyed, unbiased draw; risk signals always reviewed."""

from __future__ import annotations

import math

import pytest

from recorder.sampling import (
    DRAW_ALGORITHM,
    MandatoryReviewReason,
    ReviewSampler,
    RiskSignals,
    UnknownSamplingKeyError,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
CALL_IDS = [f"call-{i:05d}" for i in range(10_000)]


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_sampled_share_is_within_five_sigma_of_the_rate(rate: float) -> None:
    sampler = ReviewSampler(rate, "k1", KEY)
    sampled = sum(sampler.decide(call_id).sampled for call_id in CALL_IDS)
    n = len(CALL_IDS)
    sigma = math.sqrt(n * rate * (1 - rate))
    assert abs(sampled - n * rate) <= 5 * sigma, (sampled, n * rate, sigma)


def test_draws_are_uniform_over_the_unit_interval() -> None:
    sampler = ReviewSampler(0.1, "k1", KEY)
    draws = [sampler.draw(call_id) for call_id in CALL_IDS]
    assert all(0.0 <= d < 1.0 for d in draws)
    # Ten equal bins, each within 5 sigma of 1,000.
    bins = [0] * 10
    for d in draws:
        bins[int(d * 10)] += 1
    sigma = math.sqrt(10_000 * 0.1 * 0.9)
    assert all(abs(b - 1_000) <= 5 * sigma for b in bins), bins


def test_same_call_and_key_give_the_same_decision() -> None:
    first = ReviewSampler(0.1, "k1", KEY)
    again = ReviewSampler(0.1, "k1", KEY)  # a fresh process with the same configuration
    for call_id in CALL_IDS[:500]:
        assert first.decide(call_id) == again.decide(call_id)


def test_a_different_key_draws_independently() -> None:
    one = ReviewSampler(0.5, "k1", KEY)
    two = ReviewSampler(0.5, "k2", OTHER_KEY)
    pairs = [(one.draw(c), two.draw(c)) for c in CALL_IDS]
    assert sum(a == b for a, b in pairs) == 0
    # Independent at rate 0.5: agreement on "sampled" is a fair coin per call.
    agree = sum((a < 0.5) == (b < 0.5) for a, b in pairs)
    sigma = math.sqrt(10_000 * 0.25)
    assert abs(agree - 5_000) <= 5 * sigma
    # And the draws are uncorrelated (|r| within 5 standard errors of 0).
    n = len(pairs)
    mean_a = sum(a for a, _ in pairs) / n
    mean_b = sum(b for _, b in pairs) / n
    cov = sum((a - mean_a) * (b - mean_b) for a, b in pairs) / n
    var_a = sum((a - mean_a) ** 2 for a, _ in pairs) / n
    var_b = sum((b - mean_b) ** 2 for _, b in pairs) / n
    assert abs(cov / math.sqrt(var_a * var_b)) <= 5 / math.sqrt(n)


def test_the_same_secret_under_another_key_id_draws_the_same() -> None:
    # The key id names the secret for audits; it does not change the draw.
    assert ReviewSampler(0.1, "a", KEY).draw("c") == ReviewSampler(0.1, "b", KEY).draw("c")


def test_decision_holds_its_inputs_and_verifies() -> None:
    sampler = ReviewSampler(0.25, "2026-11", KEY)
    decision = sampler.decide("call-42")
    assert decision.call_id == "call-42"
    assert decision.rate == 0.25
    assert decision.key_id == "2026-11"
    assert decision.draw == sampler.draw("call-42")
    assert decision.drawn == (decision.draw < 0.25) == decision.sampled
    assert decision.mandatory_reasons == ()
    assert decision.algorithm == DRAW_ALGORITHM
    assert decision.to_json()["mandatory_reasons"] == []
    assert sampler.verify(decision)
    # After rotation the old decision still verifies with the retired key.
    rotated = ReviewSampler(0.25, "2027-01", OTHER_KEY, retired_keys={"2026-11": KEY})
    assert rotated.verify(decision)
    assert rotated.decide("call-42").key_id == "2027-01"
    # A tampered decision does not.
    from dataclasses import replace

    assert not sampler.verify(replace(decision, sampled=not decision.sampled))
    assert not sampler.verify(replace(decision, draw=0.999999))
    with pytest.raises(UnknownSamplingKeyError):
        ReviewSampler(0.25, "other", OTHER_KEY).verify(decision)


@pytest.mark.parametrize(
    ("signals", "reasons"),
    [
        (RiskSignals(contact_details_in_chat=True), ("contact_details_in_chat",)),
        (RiskSignals(reported_by_participant=True), ("reported_by_participant",)),
        (
            RiskSignals(contact_details_in_chat=True, reported_by_participant=True),
            ("contact_details_in_chat", "reported_by_participant"),
        ),
        (RiskSignals(other=frozenset({"account_flagged"})), ("account_flagged",)),
    ],
)
def test_risk_signals_are_always_sampled(signals: RiskSignals, reasons: tuple[str, ...]) -> None:
    never = ReviewSampler(0.0, "k1", KEY)
    for call_id in CALL_IDS[:200]:
        decision = never.decide(call_id, signals)
        assert decision.sampled is True
        assert decision.drawn is False
        assert decision.mandatory_reasons == reasons
        assert never.verify(decision)
    assert MandatoryReviewReason.CONTACT_DETAILS_IN_CHAT.value == "contact_details_in_chat"


def test_rate_bounds() -> None:
    assert not any(ReviewSampler(0.0, "k", KEY).decide(c).sampled for c in CALL_IDS[:500])
    assert all(ReviewSampler(1.0, "k", KEY).decide(c).sampled for c in CALL_IDS[:500])
    for bad in (-0.01, 1.01, math.nan):
        with pytest.raises(ValueError):
            ReviewSampler(bad, "k", KEY)
    with pytest.raises(ValueError):
        ReviewSampler(0.1, "k", b"short")
    with pytest.raises(ValueError):
        ReviewSampler(0.1, "", KEY)
