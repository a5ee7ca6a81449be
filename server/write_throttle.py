"""Per-person throttle of the writes people make over HTTP: inbox messages and reports.

The call WebSocket has its own per-socket limit (``signaling.ws_limits``); HTTP had none,
so one account posted 500 messages in 2.2 s. Each kind of write has a token bucket per
user: ``burst`` writes at once, refilled at a steady rate; past it the request answers
429 ``rate_limited`` with ``Retry-After``, and nothing is stored. The buckets live in the
serving process (one node: exact; a cluster multiplies the rate by the nodes a person's
requests reach, which still bounds a flood).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from aiohttp import web

from server.errors import ApiError
from server.settings import Settings


@dataclass(slots=True)
class _Bucket:
    tokens: float
    last: float


@dataclass(frozen=True, slots=True)
class ThrottleDecision:
    allowed: bool
    retry_after_seconds: float
    """0 when allowed; else how long until one more write is allowed."""


class WriteThrottle:
    """Token buckets by key. Pure: the caller passes ``now`` (any monotonic seconds)."""

    MAX_KEYS = 100_000
    """Past this many buckets, full ones are forgotten (losslessly: a full bucket is what a
    new key gets), so memory stays bounded by the people writing right now."""

    def __init__(self, *, rate_per_second: float, burst: int) -> None:
        self.rate_per_second = rate_per_second
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float) -> ThrottleDecision:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.MAX_KEYS:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            elapsed = max(0.0, now - bucket.last)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate_per_second)
            bucket.last = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return ThrottleDecision(True, 0.0)
        return ThrottleDecision(False, (1.0 - bucket.tokens) / self.rate_per_second)

    def _forget_full(self, now: float) -> None:
        refill = self.burst / self.rate_per_second
        for key in [k for k, b in self._buckets.items() if now - b.last >= refill]:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(frozen=True, slots=True)
class WriteThrottles:
    """The app's throttles, one per kind of write."""

    messages: WriteThrottle
    reports: WriteThrottle

    @classmethod
    def from_settings(cls, settings: Settings) -> WriteThrottles:
        return cls(
            messages=WriteThrottle(
                rate_per_second=settings.message_rate_per_minute / 60,
                burst=settings.message_rate_burst,
            ),
            reports=WriteThrottle(
                rate_per_second=settings.report_rate_per_minute / 60,
                burst=settings.report_rate_burst,
            ),
        )


WRITE_THROTTLES = web.AppKey("write_throttles", WriteThrottles)


def check_write_rate(throttle: WriteThrottle, user_id: str, what: str) -> None:
    """Raise 429 ``rate_limited`` (with ``Retry-After``) when ``user_id`` writes too fast."""
    decision = throttle.take(user_id, time.monotonic())
    if decision.allowed:
        return
    seconds = max(1, math.ceil(decision.retry_after_seconds))
    raise ApiError(
        429,
        "rate_limited",
        f"You are sending {what} too fast. Wait {seconds} s and try again; nothing was saved.",
        headers={"Retry-After": str(seconds)},
    )
