"""The per-person write throttle's token buckets (server/write_throttle.py), on a fake clock."""

from __future__ import annotations

import pytest

from server.write_throttle import WriteThrottle


def test_a_burst_then_one_per_refill_interval() -> None:
    throttle = WriteThrottle(rate_per_second=0.5, burst=3)
    assert [throttle.take("u", 0.0).allowed for _ in range(4)] == [True, True, True, False]
    refused = throttle.take("u", 0.0)
    assert refused.retry_after_seconds == pytest.approx(2.0)
    assert not throttle.take("u", 1.9).allowed
    assert throttle.take("u", 2.0 + 1.9).allowed
    assert throttle.take("other", 0.0).allowed  # buckets are per key


def test_a_quiet_key_gets_its_burst_back_but_no_more() -> None:
    throttle = WriteThrottle(rate_per_second=1.0, burst=2)
    for _ in range(2):
        throttle.take("u", 0.0)
    allowed = [throttle.take("u", 1000.0).allowed for _ in range(3)]
    assert allowed == [True, True, False]


def test_memory_stays_bounded_by_forgetting_full_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(WriteThrottle, "MAX_KEYS", 10)
    throttle = WriteThrottle(rate_per_second=1.0, burst=2)
    for n in range(10):
        throttle.take(f"old{n}", 0.0)
    throttle.take("busy", 100.0)
    throttle.take("busy", 100.0)
    assert len(throttle) <= 10
    # Forgetting is lossless: a forgotten key starts with a full bucket, as it had.
    assert throttle.take("old0", 100.0).allowed
    assert not throttle.take("busy", 100.0).allowed  # a drained bucket is kept
