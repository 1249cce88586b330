"""What one firing sent ahead costs this dispatcher, in milliseconds: how
far ahead of a burst the scheduler must start (dispatcher/scheduler.py
`Scheduler.horizon`; docs/ARCHITECTURE.md, "Dispatch ahead").

Measured, not assumed: when the scheduler starts a batch of firings ahead in
one pass, the time until the last of them was prepared (claimed, recorded,
routed and handed to its executor's link) divided by their number is one
sample, and an exponentially weighted mean of the samples is the cost. That
is wall time on this machine, with whatever else shares its cores, which is
what decides when the burst is ready. Until a sample exists, the cost
measured for the embedded burst bench (bench/RESULTS.md, issue 16) is used.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# ~0.6 ms of dispatcher CPU per firing (10,000-firing burst, 2026-12-06).
DEFAULT_PER_FIRING_MS = 0.6
# Samples only from batches this big: a few firings measure latency, not cost.
MIN_BATCH = 100
# Weight of a new sample.
ALPHA = 0.3
# A sample outside these bounds is clamped (a stall, or a batch mostly claimed elsewhere).
FLOOR_MS, CEILING_MS = 0.05, 5.0
# A measurement not complete after this long (firings claimed elsewhere or
# skipped were never sent) is dropped.
STALE_SECONDS = 15.0


class AheadCost:
    """The per-firing cost of preparing firings ahead, measured batch by batch."""

    def __init__(self, initial_ms: float = DEFAULT_PER_FIRING_MS, clock: Callable[[], float] = time.monotonic) -> None:
        self._ms = initial_ms
        self._clock = clock
        self._begin: float | None = None
        self._expected = 0
        self._done = 0

    def per_firing_ms(self) -> float:
        return self._ms

    def batch(self, count: int) -> None:
        """The scheduler started `count` firings ahead in one pass."""
        now = self._clock()
        if self._begin is not None and now - self._begin < STALE_SECONDS:
            return  # one measurement at a time
        self._begin = None
        if count >= MIN_BATCH:
            self._begin, self._expected, self._done = now, count, 0

    def prepared(self) -> None:
        """A firing started ahead was handed to its executor's link."""
        if self._begin is None:
            return
        self._done += 1
        if self._done < self._expected:
            return
        sample = (self._clock() - self._begin) * 1000 / self._expected
        sample = min(max(sample, FLOOR_MS), CEILING_MS)
        self._ms += ALPHA * (sample - self._ms)
        self._begin = None
