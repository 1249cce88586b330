from __future__ import annotations

import asyncio

from crontrio.common.claims.memory import MemoryClaims


async def test_first_claim_wins_and_expired_claims_are_forgotten() -> None:
    claims = MemoryClaims()
    assert await claims.claim("1:1000", "a", ttl_ms=50)
    assert not await claims.claim("1:1000", "b", ttl_ms=50)
    assert await claims.claim("1:2000", "b", ttl_ms=50)
    await asyncio.sleep(0.06)  # the TTL itself is what is tested here
    assert await claims.claim("1:3000", "a", ttl_ms=50)
    assert claims._owners == {"1:3000": "a"}  # expired entries were dropped: memory stays bounded
