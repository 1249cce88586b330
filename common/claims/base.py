"""The claims interface."""

from __future__ import annotations

from typing import Protocol


class Claims(Protocol):
    """Grants each firing id to exactly one owner.

    A claim is never released: a firing happens once, and an expired claim
    only matters after the firing is long past. The run table's unique key is
    the second line of defence behind it.
    """

    async def claim(self, firing_id: str, owner: str, ttl_ms: int) -> bool:
        """True if `owner` now holds `firing_id` (first caller wins)."""
        ...

    async def claim_many(self, firing_ids: list[str], owner: str, ttl_ms: int) -> list[bool]:
        """`claim` for each of `firing_ids` (in order, one answer each), done
        together: the firings of one scheduler batch cost one round trip, not
        one per firing. An id listed twice is granted at most once."""
        ...

    async def close(self) -> None: ...


# A claim must outlive every attempt to fire the same firing: the latest a
# dispatcher still fires is the scheduler's catch-up window (60 s) plus
# clock skew. Five minutes is ample and keeps Redis memory bounded.
CLAIM_TTL_MS = 5 * 60 * 1000
