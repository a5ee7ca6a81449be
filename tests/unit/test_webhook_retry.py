"""The webhook retry core: delivered on 2xx, exponential backoff with jitter otherwise,
retried for the whole window and then failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.webhooks.retry import (
    MAX_RETRY_DELAY,
    AttemptResult,
    DeliveryDecision,
    Outcome,
    RetryPolicy,
    after_attempt,
    retry_delay,
)
from server.webhooks.signing import signature_header

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
POLICY = RetryPolicy(base_delay=timedelta(seconds=10), window=timedelta(hours=24))


def decide(
    result: AttemptResult, attempts: int, now: datetime, jitter: float = 0.5
) -> DeliveryDecision:
    return after_attempt(
        result, attempts=attempts, window_started_at=T0, now=now, policy=POLICY, jitter=jitter
    )


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_any_2xx_is_delivered(status: int) -> None:
    decision = decide(AttemptResult(status=status), 1, T0)
    assert decision.outcome is Outcome.DELIVERED
    assert decision.retry_at is None


@pytest.mark.parametrize(
    "result",
    [
        AttemptResult(status=500),
        AttemptResult(status=503),
        AttemptResult(status=404),
        AttemptResult(status=301),  # redirects are not followed: not an answer
        AttemptResult(status=199),
        AttemptResult(error="ClientConnectorError: connection refused"),
        AttemptResult(),
    ],
)
def test_anything_else_is_retried_with_its_reason(result: AttemptResult) -> None:
    decision = decide(result, 1, T0)
    assert decision.outcome is Outcome.RETRY
    assert decision.retry_at is not None and decision.retry_at > T0
    assert decision.reason == result.describe()


def test_backoff_doubles_within_its_jitter_band_and_is_capped() -> None:
    for attempts in range(1, 12):
        full = min(timedelta(seconds=10 * 2 ** (attempts - 1)), MAX_RETRY_DELAY)
        assert retry_delay(attempts, POLICY, 0.0) == full / 2
        assert full / 2 <= retry_delay(attempts, POLICY, 0.999) < full
    assert retry_delay(10_000, POLICY, 0.0) == MAX_RETRY_DELAY / 2


def test_jitter_outside_its_range_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        retry_delay(1, POLICY, 1.0)


def test_retries_run_for_the_whole_window_then_fail() -> None:
    now, attempts = T0, 0
    while True:
        attempts += 1
        decision = decide(AttemptResult(status=500), attempts, now, jitter=0.99)
        if decision.outcome is Outcome.FAILED:
            break
        assert decision.retry_at is not None
        assert decision.retry_at <= T0 + POLICY.window
        now = decision.retry_at
    # The last retry was made at the window's end, not before it.
    assert now == T0 + timedelta(hours=24)
    assert "gave up after" in decision.reason and "HTTP 500" in decision.reason
    assert 25 <= attempts <= 40  # about one an hour once the cap is reached


def test_a_redrive_restarts_the_window() -> None:
    later = T0 + timedelta(days=3)
    decision = after_attempt(
        AttemptResult(status=500),
        attempts=30,
        window_started_at=later,
        now=later + timedelta(seconds=1),
        policy=POLICY,
        jitter=0.0,
    )
    assert decision.outcome is Outcome.RETRY


def test_signature_header_format() -> None:
    # Known answer computed independently: printf '1700000000.{"a":1}' | openssl dgst
    # -sha256 -hmac secret
    header = signature_header("secret", 1_700_000_000, b'{"a":1}')
    assert header == (
        "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
    )
