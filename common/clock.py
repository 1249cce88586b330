"""One clock for the services: wall milliseconds and monotonic seconds.

Every timestamp the store and the protos carry is wall-clock milliseconds
since the epoch (`now_ms`). Code that measures how long something took uses
the monotonic clock instead, so a stepped wall clock (NTP) cannot skew it.
Classes that need either take a `Clock` so a test can drive time by hand
instead of patching the `time` module (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import time
from typing import Protocol


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock milliseconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations only)."""
        ...


class SystemClock:
    """The real clocks."""

    def now_ms(self) -> int:
        return now_ms()

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK: Clock = SystemClock()

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "now_ms"]
