from __future__ import annotations

from crontrio.common.claims.memory import MemoryClaims


async def test_first_claim_wins_and_expired_claims_are_forgotten() -> None:
    now = [100.0]
    claims = MemoryClaims(monotonic=lambda: now[0])
    assert await claims.claim("1:1000", "a", ttl_ms=50)
    assert not await claims.claim("1:1000", "b", ttl_ms=50)
    assert await claims.claim("1:2000", "b", ttl_ms=50)
    now[0] += 0.049
    assert not await claims.claim("1:1000", "b", ttl_ms=50)  # still within its TTL
    now[0] += 0.001  # the TTL has passed
    assert await claims.claim("1:3000", "a", ttl_ms=50)
    assert claims._owners == {"1:3000": "a"}  # expired entries were dropped: memory stays bounded
