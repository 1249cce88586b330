"""Slows down password guessing: repeated failed logins per user name and per peer.

In memory, per dispatcher: an attacker spreading guesses over N dispatchers
gets N times the budget, which still leaves scrypt plus exponential lockout
far below anything useful. Unknown user names are throttled exactly like
known ones, so the lockout reveals nothing about which names exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

FREE_FAILURES = 5  # failures of one user name within WINDOW_SECONDS before any lockout
# A peer may be a proxy for many people (the console is one for every
# browser), so it gets a larger budget before one guesser locks out all.
PEER_FREE_FAILURES = 20
PEER_PREFIX = "peer:"
WINDOW_SECONDS = 900.0
MAX_LOCK_SECONDS = 300.0
MAX_KEYS = 100_000  # bound the memory a flood of distinct names can take


@dataclass
class _Failures:
    count: int
    last: float


class LoginThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, _Failures] = {}

    def wait_seconds(self, keys: Iterable[str]) -> float:
        """How long until a login for these keys is tried again (0 = now)."""
        now = self._clock()
        wait = 0.0
        for key in keys:
            entry = self._failures.get(key)
            free = PEER_FREE_FAILURES if key.startswith(PEER_PREFIX) else FREE_FAILURES
            if entry is None or now - entry.last > WINDOW_SECONDS or entry.count < free:
                continue
            lock = min(2.0 ** (entry.count - free), MAX_LOCK_SECONDS)
            wait = max(wait, entry.last + lock - now)
        return wait

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        if len(self._failures) >= MAX_KEYS:
            self._failures = {k: v for k, v in self._failures.items() if now - v.last <= WINDOW_SECONDS}
        for key in keys:
            entry = self._failures.get(key)
            if entry is None or now - entry.last > WINDOW_SECONDS:
                self._failures[key] = _Failures(1, now)
            else:
                entry.count += 1
                entry.last = now

    def succeeded(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)
