"""In-process claims for the embedded mode (one dispatcher)."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable


class MemoryClaims:
    """Claims held in a dict, expired lazily so memory stays bounded."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        # Injectable so that a test moves time instead of sleeping through a TTL.
        self._monotonic = monotonic
        self._owners: dict[str, str] = {}
        self._expiry: list[tuple[float, str]] = []

    async def claim(self, firing_id: str, owner: str, ttl_ms: int) -> bool:
        return self._claim(firing_id, owner, self._expire(), ttl_ms)

    async def claim_many(self, firing_ids: list[str], owner: str, ttl_ms: int) -> list[bool]:
        now = self._expire()
        return [self._claim(firing_id, owner, now, ttl_ms) for firing_id in firing_ids]

    async def close(self) -> None:
        self._owners.clear()
        self._expiry.clear()

    def _expire(self) -> float:
        """Forget the claims past their TTL; now (monotonic)."""
        now = self._monotonic()
        while self._expiry and self._expiry[0][0] <= now:
            _, expired = heapq.heappop(self._expiry)
            self._owners.pop(expired, None)
        return now

    def _claim(self, firing_id: str, owner: str, now: float, ttl_ms: int) -> bool:
        if firing_id in self._owners:
            return False
        self._owners[firing_id] = owner
        heapq.heappush(self._expiry, (now + ttl_ms / 1000, firing_id))
        return True
