"""After each delivery attempt: delivered, retry later (when), or failed. Pure.

Exponential backoff with "equal jitter": the n-th retry waits between half and all of
``base * 2**(n-1)``, capped at ``MAX_RETRY_DELAY``, so receivers that come back are not
hit by every node's retries at the same instant. Retries go on until the retry window
(24 h by default) has passed since the event was written or re-driven; the last retry is
made at the window's end, so an event is tried for the whole window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

MAX_RETRY_DELAY = timedelta(hours=1)


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_delay: timedelta
    window: timedelta
    max_delay: timedelta = MAX_RETRY_DELAY


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one POST came to: an HTTP status, or an error before any answer."""

    status: int | None = None
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        if self.status is not None:
            return f"HTTP {self.status}"
        return self.error or "no answer"


@dataclass(frozen=True, slots=True)
class DeliveryDecision:
    outcome: Outcome
    reason: str
    retry_at: datetime | None = None


def retry_delay(attempts: int, policy: RetryPolicy, jitter: float) -> timedelta:
    """The wait after the ``attempts``-th failed attempt; ``jitter`` is in [0, 1)."""
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    # Exponent bounded so a huge attempt count cannot overflow the float.
    scale = 2.0 ** min(max(attempts - 1, 0), 40)
    full = min(policy.base_delay * scale, policy.max_delay)
    return full * (0.5 + jitter / 2)


def after_attempt(
    result: AttemptResult,
    *,
    attempts: int,
    window_started_at: datetime,
    now: datetime,
    policy: RetryPolicy,
    jitter: float,
) -> DeliveryDecision:
    """Decide on an event after its ``attempts``-th attempt (counting this one)."""
    if result.accepted:
        return DeliveryDecision(Outcome.DELIVERED, result.describe())
    deadline = window_started_at + policy.window
    if now >= deadline:
        return DeliveryDecision(
            Outcome.FAILED,
            f"{result.describe()}; gave up after {attempts} attempt(s) over the retry window",
        )
    retry_at = min(now + retry_delay(attempts, policy, jitter), deadline)
    return DeliveryDecision(Outcome.RETRY, result.describe(), retry_at)
