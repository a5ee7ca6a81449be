"""Event-loop lag, sampled by one small task: how late a timer fires is how late every
media callback and WebSocket write is (DESIGN.md section 4: lag destroys call quality).

One sleep per interval, off the media path; the histogram is observed on the loop.
"""

from __future__ import annotations

import asyncio
from typing import Final

from prometheus_client import CollectorRegistry, Histogram

SAMPLE_INTERVAL_SECONDS: Final = 0.5
# From "unnoticeable" (1 ms) to "audio breaks up" (over a frame's 20 ms) to "frozen".
LAG_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class LoopLagSampler:
    """Owns its sampling task: ``start`` once, ``aclose`` (safe twice) cancels and awaits."""

    def __init__(self, registry: CollectorRegistry, interval: float | None = None) -> None:
        # Read when made, so tests can patch the module's interval small.
        interval = interval or SAMPLE_INTERVAL_SECONDS
        self._interval = interval
        self.histogram = Histogram(
            "inboxcall_event_loop_lag_seconds",
            "How late the event loop ran a timer, sampled every "
            f"{interval:g} s (the media path shares this loop).",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._sample(), name="metrics-loop-lag"
            )

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            self.histogram.observe(max(0.0, loop.time() - expected))

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
