"""In-process claims for the embedded mode (one dispatcher)."""

from __future__ import annotations

import heapq
import time


class MemoryClaims:
    """Claims held in a dict, expired lazily so memory stays bounded."""

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}
        self._expiry: list[tuple[float, str]] = []

    async def claim(self, firing_id: str, owner: str, ttl_ms: int) -> bool:
        now = time.monotonic()
        while self._expiry and self._expiry[0][0] <= now:
            _, expired = heapq.heappop(self._expiry)
            self._owners.pop(expired, None)
        if firing_id in self._owners:
            return False
        self._owners[firing_id] = owner
        heapq.heappush(self._expiry, (now + ttl_ms / 1000, firing_id))
        return True

    async def close(self) -> None:
        self._owners.clear()
        self._expiry.clear()
