"""Chooses the claims backend from the [redis] section."""

from __future__ import annotations

from crontrio.common.claims.base import Claims
from crontrio.common.claims.memory import MemoryClaims
from crontrio.common.config import RedisConfig


def make_claims(cfg: RedisConfig) -> Claims:
    """In-process claims when ``[redis] host`` is empty (embedded mode, one
    dispatcher), else Redis claims shared by every dispatcher."""
    if not cfg.host:
        return MemoryClaims()
    # Imported here: the redis client costs an embedded dispatcher's
    # start-up ~50 ms of imports it never uses.
    from crontrio.common.claims.redis_claims import RedisClaims

    return RedisClaims(cfg)
