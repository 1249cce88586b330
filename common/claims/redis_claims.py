"""Firing claims in Redis, shared by every dispatcher (distributed mode).

One claim is one command, ``SET crontrio:fire:<job_id>:<scheduled_ms> <owner>
NX PX <ttl>``: the first dispatcher to set the key runs the firing, the others
drop it. Claims are never deleted (the TTL bounds memory) and redis-py's
``Lock`` is never used: a lock is released when its holder finishes, after
which a late dispatcher would take it again and run the firing twice.

Redis is the fast first line of defence, not the only one: the run table's
unique key (job, scheduled, attempt) stops a second run of the same firing.
So when Redis is down or slow, a claim is not refused here: it returns True
at once and lets the database decide. A dead Redis therefore neither stops
firing nor causes a double run; it only moves the decision to the database,
which is logged loudly once per outage.

A batch of firings due together (``claim_many``) is the same SETs sent as one
non-transactional pipeline per chunk of CLAIM_CHUNK: one round trip for a
thousand claims. Not MULTI/EXEC: each SET NX decides its own key, and nothing
is gained by making the batch atomic. A chunk whose pipeline fails (Redis down,
hung, refusing writes) answers True for each of its firings, as a failed
``claim`` does, for the same reason: some of its SETs may have been applied
before the failure, and our own key must not be read as someone else's
claim. The breaker then opens, so the rest of the batch skips Redis too.
Answers Redis did give for earlier chunks of the batch stand: a refusal
from Redis is always reliable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig

from crontrio.common.config import RedisConfig

log = logging.getLogger(__name__)

KEY_PREFIX = "crontrio:fire:"

# A claim sits on the fire-time path of every job: a hung Redis must cost a
# firing a fraction of a second, not redis-py's default of seconds.
SOCKET_TIMEOUT_SECONDS = 0.3
# After a failure Redis is skipped (claims go straight to the database key)
# for a back-off period that doubles while it stays down, so an outage does
# not add a timeout to every firing.
BACKOFF_INITIAL_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 10.0
# Claims in flight at once: a burst of firings at the top of the minute shares
# this many pooled connections instead of opening one socket per firing.
# Waiting for a slot is not a failure, unlike exhausting a capped pool.
MAX_IN_FLIGHT = 64
# Claims per pipeline in claim_many: one round trip each. A thousand SETs are
# about a millisecond of Redis time, well inside SOCKET_TIMEOUT_SECONDS even
# on a loaded machine, and bound the buffers on both sides.
CLAIM_CHUNK = 1000


def claim_key(firing_id: str) -> str:
    """The Redis key of one firing ("<job_id>:<scheduled_ms>")."""
    return KEY_PREFIX + firing_id


class RedisClaims:
    """Claims held in Redis with ``SET NX PX``, falling back to the run
    table's unique key while Redis is unreachable.

    A healthy claim is one round trip on a pooled connection. Errors never
    escape ``claim()``: any Redis failure answers True ("not refused here")
    and opens a circuit breaker so that the following claims skip Redis until
    the back-off period has passed; then one claim probes Redis again.
    """

    def __init__(
        self,
        cfg: RedisConfig,
        *,
        socket_timeout: float = SOCKET_TIMEOUT_SECONDS,
        backoff_initial: float = BACKOFF_INITIAL_SECONDS,
        backoff_max: float = BACKOFF_MAX_SECONDS,
        health_check_interval: int = 0,
        chunk: int = CLAIM_CHUNK,
    ) -> None:
        self.address = f"{cfg.host}:{cfg.port}"
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._chunk = chunk
        self._redis = aioredis.Redis(
            host=cfg.host,
            port=cfg.port,
            db=cfg.db,
            password=cfg.password or None,
            socket_connect_timeout=socket_timeout,
            socket_timeout=socket_timeout,
            # No retries inside redis-py: retrying a SET NX whose reply was
            # lost would find our own key and report the firing as taken by
            # someone else, and then nobody runs it. A failed claim falls back
            # to the database key instead, which is always safe.
            retry=Retry(NoBackoff(), 0),
            # Off by default: a health-check PING before a claim on an idle
            # connection would double the cost of a firing. The pool already
            # notices a connection the server closed before reusing it.
            health_check_interval=health_check_interval,
            # redis-py 8 skips its check for pooled connections the server
            # closed (e.g. a Redis restart) while maintenance notifications
            # (a Redis Enterprise feature) are on, counting on retries that
            # we turned off; without that check the first claim after every
            # Redis restart would fail and open the breaker for nothing.
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
        )
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        # Breaker state: None while healthy, else when the outage began.
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._backoff = backoff_initial
        self._probing = False
        self._fallbacks = 0  # claims left to the database during this outage

    async def claim(self, firing_id: str, owner: str, ttl_ms: int) -> bool:
        """True if `owner` now holds `firing_id`, or if Redis cannot tell.

        False only when Redis answered that the firing is already claimed.
        """

        async def send() -> list[Any]:
            return [await self._redis.set(claim_key(firing_id), owner, nx=True, px=ttl_ms)]

        [won] = await self._guarded(1, send)
        return won

    async def claim_many(self, firing_ids: list[str], owner: str, ttl_ms: int) -> list[bool]:
        """`claim` for each of `firing_ids`, one pipeline per chunk of them
        (CLAIM_CHUNK). False only where Redis answered that the firing is
        already claimed (or listed earlier in the batch)."""
        answers: list[bool] = []
        for start in range(0, len(firing_ids), self._chunk):
            chunk = firing_ids[start : start + self._chunk]

            async def send(chunk: list[str] = chunk) -> list[Any]:
                pipe = self._redis.pipeline(transaction=False)
                for firing_id in chunk:
                    pipe.set(claim_key(firing_id), owner, nx=True, px=ttl_ms)
                # An error reply to any SET (e.g. OOM) raises here, once all
                # the replies are read: the whole chunk goes to the database.
                return await pipe.execute()

            answers.extend(await self._guarded(len(chunk), send))
        return answers

    async def _guarded(self, claims: int, send: Callable[[], Awaitable[list[Any]]]) -> list[bool]:
        """The answers of `send` (the SETs of `claims` claims) as booleans, or
        True for each while the breaker is open or when Redis fails."""
        if self._skip_redis(claims):
            return [True] * claims
        async with self._in_flight:
            # Redis may have failed while this claim waited for a slot.
            if self._skip_redis(claims):
                return [True] * claims
            probe = self._down_since is not None
            if probe:
                self._probing = True
            try:
                won = await send()
            except (RedisError, OSError) as exc:
                self._failed(exc, probe, claims)
                return [True] * claims
            finally:
                if probe:
                    self._probing = False
        self._answered()
        return [bool(w) for w in won]

    async def ping(self) -> bool:
        """Whether Redis answers now (for health reporting; ignores the breaker)."""
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()

    def _skip_redis(self, claims: int = 1) -> bool:
        """While the breaker is open, or a probe is out, leave it to the database."""
        if self._down_since is None:
            return False
        if self._probing or time.monotonic() < self._retry_at:
            self._fallbacks += claims
            return True
        return False

    def _failed(self, exc: BaseException, probe: bool, claims: int = 1) -> None:
        now = time.monotonic()
        self._fallbacks += claims
        if self._down_since is None:
            self._down_since = now
            self._backoff = self._backoff_initial
            self._retry_at = now + self._backoff
            unreachable = isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError)
            log.error(
                "redis at %s %s (%s: %s): firing claims fall back to the database unique key "
                "(job, scheduled, attempt) until it answers again; retrying Redis in %.1fs",
                self.address,
                "unreachable" if unreachable else "failed a claim",
                type(exc).__name__,
                exc,
                self._backoff,
            )
        elif probe:
            self._backoff = min(self._backoff * 2, self._backoff_max)
            self._retry_at = now + self._backoff
            log.debug("redis at %s still failing (%s); retrying in %.1fs", self.address, exc, self._backoff)
        # Else: a claim already in flight when the outage began; the breaker
        # is open and the outage logged, nothing more to say.

    def _answered(self) -> None:
        if self._down_since is None:
            return
        log.warning(
            "redis at %s answers again after %.1fs: firing claims are back on Redis "
            "(%d firing(s) were left to the database unique key meanwhile)",
            self.address,
            time.monotonic() - self._down_since,
            self._fallbacks,
        )
        self._down_since = None
        self._backoff = self._backoff_initial
        self._fallbacks = 0
