"""The claims contract, run against every backend, plus what only Redis can do.

In-process claims (embedded mode) and Redis claims on a real, private
redis-server (distributed mode), both built by the factory from a [redis]
section. Redis alone is shared by several dispatchers and can go away: the
tests kill, freeze and restart it and check that firing goes on (claims fall
back to the run table's unique key), that the outage is logged once, and that
claims return to Redis when it answers again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from crontrio.common.claims.base import Claims
from crontrio.common.claims.factory import make_claims
from crontrio.common.claims.memory import MemoryClaims
from crontrio.common.claims.redis_claims import KEY_PREFIX, RedisClaims
from crontrio.common.config import RedisConfig
from testing_support.servers import RedisServer
from testing_support.services import wait_until

LOGGER = "crontrio.common.claims.redis_claims"
TTL = 60_000


def redis_config(server: RedisServer) -> RedisConfig:
    return RedisConfig(host=server.host, port=server.port)


@pytest.fixture(params=["memory", "redis"])
async def claims(request: pytest.FixtureRequest) -> AsyncIterator[Claims]:
    if request.param == "memory":
        backend: Claims = make_claims(RedisConfig())
    else:
        # The contract is about who wins, not about the fire-path timeout: a
        # loaded test machine can take longer than 0.3 s to open 50
        # connections, and then the circuit breaker rightly hands every claim
        # to the database key (tested on its own below).
        backend = RedisClaims(redis_config(request.getfixturevalue("redis_server")), socket_timeout=5.0)
    yield backend
    await backend.close()


@pytest.fixture
async def redis_claims(redis_server: RedisServer) -> AsyncIterator[RedisClaims]:
    backend = RedisClaims(redis_config(redis_server))
    yield backend
    await backend.close()


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client to look at what the claims left in Redis."""
    client = redis.Redis(host=redis_server.host, port=redis_server.port, decode_responses=True, socket_timeout=2)
    yield client
    client.close()


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == level]


# --- the contract, for every backend ------------------------------------------


def test_factory_picks_the_backend_from_the_redis_host() -> None:
    assert isinstance(make_claims(RedisConfig()), MemoryClaims)
    assert isinstance(make_claims(RedisConfig(host="127.0.0.1", port=1)), RedisClaims)  # connects lazily


async def test_first_claim_wins_and_others_are_refused(claims: Claims) -> None:
    assert await claims.claim("1:1000", "a", TTL)
    assert not await claims.claim("1:1000", "b", TTL)
    # Granted once, even to the same owner: a firing handed out twice is a double run.
    assert not await claims.claim("1:1000", "a", TTL)


async def test_distinct_firings_are_independent(claims: Claims) -> None:
    assert await claims.claim("1:1000", "a", TTL)
    assert await claims.claim("1:2000", "b", TTL)  # same job, another time
    assert await claims.claim("2:1000", "b", TTL)  # another job, same time
    assert not await claims.claim("1:2000", "a", TTL)


async def test_concurrent_claims_of_one_firing_have_one_winner(claims: Claims) -> None:
    results = await asyncio.gather(*(claims.claim("7:5000", f"d{i}", TTL) for i in range(50)))
    assert sum(results) == 1


async def test_an_expired_claim_can_be_claimed_again(claims: Claims) -> None:
    assert await claims.claim("3:1000", "a", 50)
    assert not await claims.claim("3:1000", "b", 50)

    async def claimable() -> bool:
        return await claims.claim("3:1000", "b", TTL)

    await wait_until(claimable, 5, "the 50 ms claim to expire")
    assert not await claims.claim("3:1000", "a", TTL)


# --- Redis only -----------------------------------------------------------------


async def test_the_key_holds_the_owner_and_expires_after_the_ttl(redis_claims: RedisClaims, raw: redis.Redis) -> None:
    assert await redis_claims.claim("4:1000", "dispatcher-a", TTL)
    key = f"{KEY_PREFIX}4:1000"
    assert key == "crontrio:fire:4:1000"
    assert raw.get(key) == "dispatcher-a"
    assert TTL - 5_000 < raw.pttl(key) <= TTL
    # A refused claim changes nothing: not the owner, and it does not extend the TTL.
    assert not await redis_claims.claim("4:1000", "dispatcher-b", 10 * TTL)
    assert raw.get(key) == "dispatcher-a"
    assert raw.pttl(key) <= TTL


async def test_a_claim_is_one_set_and_never_deletes(redis_claims: RedisClaims, raw: redis.Redis) -> None:
    assert await redis_claims.claim("5:0", "a", TTL)  # opens the pooled connection
    raw.config_resetstat()
    for i in range(1, 11):
        assert await redis_claims.claim(f"5:{i}", "a", TTL)
        assert not await redis_claims.claim(f"5:{i}", "b", TTL)
    used = {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in raw.info("commandstats").items()}
    used.pop("config|resetstat", None)
    used.pop("info", None)
    assert used == {"set": 20}  # one round trip per claim; no DEL, EXPIRE, script or lock
    assert raw.dbsize() == 11


async def test_two_dispatchers_win_each_firing_once(redis_server: RedisServer, raw: redis.Redis) -> None:
    one, two = RedisClaims(redis_config(redis_server)), RedisClaims(redis_config(redis_server))
    try:
        firings = [f"6:{1000 * i}" for i in range(200)]
        won_one, won_two = await asyncio.gather(
            asyncio.gather(*(one.claim(f, "one", TTL) for f in firings)),
            asyncio.gather(*(two.claim(f, "two", TTL) for f in firings)),
        )
        for firing, a, b in zip(firings, won_one, won_two, strict=True):
            assert a != b, firing
            assert raw.get(KEY_PREFIX + firing) == ("one" if a else "two")
    finally:
        await one.close()
        await two.close()


async def test_a_redis_restart_between_firings_is_not_an_outage(
    redis_claims: RedisClaims, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    assert await redis_claims.claim("8:1000", "a", TTL)
    # The dispatcher's loop keeps running meanwhile, as it would in production.
    await asyncio.to_thread(redis_server.stop)
    await asyncio.to_thread(redis_server.start)
    # The pooled connection the old server closed is replaced, not failed on.
    assert await redis_claims.claim("8:2000", "a", TTL)
    assert not await redis_claims.claim("8:2000", "b", TTL)
    assert records(caplog, logging.ERROR) == []


async def test_redis_down_falls_back_fast_logs_once_and_recovers(
    redis_claims: RedisClaims, redis_server: RedisServer, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    assert await redis_claims.claim("9:0", "a", TTL)
    redis_server.kill()

    started = time.monotonic()
    assert await redis_claims.claim("9:1000", "a", TTL)  # not refused: the run table's unique key decides
    assert time.monotonic() - started < 1
    [error] = records(caplog, logging.ERROR)
    assert f"{redis_server.host}:{redis_server.port}" in error.getMessage()
    assert "database unique key" in error.getMessage()

    started = time.monotonic()
    for i in range(2, 22):
        # Both owners pass: Redis cannot tell them apart, the database will.
        assert await redis_claims.claim(f"9:{i * 1000}", "a", TTL)
        assert await redis_claims.claim(f"9:{i * 1000}", "b", TTL)
    assert time.monotonic() - started < 0.5
    assert len(records(caplog, logging.ERROR)) == 1  # once per outage
    assert not await redis_claims.ping()

    redis_server.start()
    assert await redis_claims.ping()
    probe = iter(range(100, 10_000))

    async def claims_reach_redis() -> bool:
        firing = f"9:{next(probe) * 1000}"
        return await redis_claims.claim(firing, "a", TTL) and raw.get(KEY_PREFIX + firing) == "a"

    await wait_until(claims_reach_redis, 5, "claims to go through Redis after the breaker period")
    [recovered] = records(caplog, logging.WARNING)
    assert "back on Redis" in recovered.getMessage()
    assert await redis_claims.claim("9:999000000", "a", TTL)
    assert not await redis_claims.claim("9:999000000", "b", TTL)  # refused again: Redis decides once more
    assert len(records(caplog, logging.ERROR)) == 1


async def test_a_hung_redis_costs_one_timeout_then_is_skipped(
    redis_claims: RedisClaims, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    assert await redis_claims.claim("10:0", "a", TTL)
    assert redis_server.proc is not None
    redis_server.proc.send_signal(signal.SIGSTOP)  # connections stay open, nothing answers
    try:
        started = time.monotonic()
        assert await redis_claims.claim("10:1000", "a", TTL)
        assert time.monotonic() - started < 1  # the short socket timeout, not redis-py's 5 s default
        assert len(records(caplog, logging.ERROR)) == 1

        started = time.monotonic()
        for i in range(2, 22):
            assert await redis_claims.claim(f"10:{i * 1000}", "a", TTL)
        # Without the breaker each of these would wait for its own timeout.
        assert time.monotonic() - started < 0.5
        assert len(records(caplog, logging.ERROR)) == 1
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)


async def test_redis_refusing_writes_falls_back_too(
    redis_server: RedisServer, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    claims = RedisClaims(redis_config(redis_server), backoff_initial=0.1)
    try:
        raw.config_set("maxmemory-policy", "noeviction")
        raw.config_set("maxmemory", 1)  # every write now fails with OOM
        assert await claims.claim("11:1000", "a", TTL)
        [error] = records(caplog, logging.ERROR)
        assert "failed a claim" in error.getMessage() and "maxmemory" in error.getMessage()

        raw.config_set("maxmemory", 0)

        async def refused_again() -> bool:
            await claims.claim("11:2000", "a", TTL)
            return not await claims.claim("11:2000", "b", TTL)

        await wait_until(refused_again, 5, "claims to go through Redis once it accepts writes")
        assert len(records(caplog, logging.WARNING)) == 1
    finally:
        await claims.close()


# --- claims in batches (claim_many) -----------------------------------------------


async def test_a_batch_answers_each_firing_in_order(claims: Claims) -> None:
    assert await claims.claim("12:2000", "b", TTL)
    batch = ["12:1000", "12:2000", "12:3000", "12:1000"]  # one taken by b; one listed twice
    assert await claims.claim_many(batch, "a", TTL) == [True, False, True, False]
    assert not await claims.claim("12:3000", "b", TTL)  # the batch's claims hold like single ones
    assert await claims.claim_many([], "a", TTL) == []


async def test_two_owners_claiming_the_same_batches_win_each_firing_once(claims: Claims) -> None:
    firings = [f"13:{1000 * i}" for i in range(2_500)]  # more than one Redis pipeline chunk
    won_a, won_b = await asyncio.gather(
        claims.claim_many(firings, "a", TTL),
        claims.claim_many(list(reversed(firings)), "b", TTL),
    )
    for firing, a, b in zip(firings, won_a, reversed(won_b), strict=True):
        assert a != b, firing


async def test_batches_across_two_redis_dispatchers_are_exclusive(redis_server: RedisServer, raw: redis.Redis) -> None:
    # Small chunks, so the two dispatchers' pipelines interleave in Redis.
    one = RedisClaims(redis_config(redis_server), socket_timeout=5.0, chunk=64)
    two = RedisClaims(redis_config(redis_server), socket_timeout=5.0, chunk=64)
    try:
        firings = [f"14:{1000 * i}" for i in range(3_000)]
        singles = firings[::7]  # a third dispatcher claiming one at a time meanwhile
        won_one, won_two, won_singles = await asyncio.gather(
            one.claim_many(firings, "one", TTL),
            two.claim_many(firings[1_500:] + firings[:1_500], "two", TTL),
            asyncio.gather(*(two.claim(f, "three", TTL) for f in singles)),
        )
        by_two = dict(zip(firings[1_500:] + firings[:1_500], won_two, strict=True))
        by_three = dict(zip(singles, won_singles, strict=True))
        for firing, a in zip(firings, won_one, strict=True):
            winners = [owner for owner, won in (("one", a), ("two", by_two[firing]), ("three", by_three.get(firing))) if won]
            assert len(winners) == 1, (firing, winners)
            assert raw.get(KEY_PREFIX + firing) == winners[0]
            assert TTL - 5_000 < raw.pttl(KEY_PREFIX + firing) <= TTL
    finally:
        await one.close()
        await two.close()


async def test_a_batch_sends_only_set_nx_px(redis_server: RedisServer, raw: redis.Redis) -> None:
    claims = RedisClaims(redis_config(redis_server), socket_timeout=5.0, chunk=100)
    try:
        assert await claims.claim("15:0", "a", TTL)
        raw.config_resetstat()
        answers = await claims.claim_many([f"15:{i}" for i in range(250)], "a", TTL)
        assert answers == [False] + [True] * 249
        used = {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in raw.info("commandstats").items()}
        used.pop("config|resetstat", None)
        used.pop("info", None)
        assert used == {"set": 250}  # SET NX PX only: no MULTI/EXEC, script or lock
    finally:
        await claims.close()


async def test_redis_down_before_a_batch_answers_all_true_and_opens_the_breaker(
    redis_claims: RedisClaims, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    assert await redis_claims.claim("16:0", "b", TTL)
    redis_server.kill()
    started = time.monotonic()
    # Even 16:0, which Redis had granted to b: Redis cannot say so now, the database will.
    assert await redis_claims.claim_many([f"16:{i}" for i in range(3_000)], "a", TTL) == [True] * 3_000
    assert time.monotonic() - started < 1  # the first chunk fails, the others skip Redis
    [error] = records(caplog, logging.ERROR)
    assert "database unique key" in error.getMessage()
    # The breaker is open: single claims skip Redis as well.
    assert await redis_claims.claim("16:5000", "a", TTL)
    assert await redis_claims.claim("16:5000", "b", TTL)
    assert len(records(caplog, logging.ERROR)) == 1


async def test_redis_failing_mid_batch_answers_true_from_there_and_opens_the_breaker(
    redis_server: RedisServer, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    claims = RedisClaims(redis_config(redis_server), socket_timeout=5.0, chunk=100)
    try:
        firings = [f"17:{i}" for i in range(5_000)]
        for firing in firings[-100:]:
            raw.set(KEY_PREFIX + firing, "b")  # the batch's last chunk: already b's
        assert await claims.claim("17:warm", "a", TTL)
        # Redis starts refusing writes (OOM) once a few hundred kilobytes more are used: part of the
        # batch lands, then a chunk fails. (Killing it at the right instant would be a race.)
        raw.config_set("maxmemory-policy", "noeviction")
        raw.config_set("maxmemory", int(raw.info("memory")["used_memory"]) + 300_000)
        try:
            answers = await claims.claim_many(firings, "a", TTL)
        finally:
            raw.config_set("maxmemory", 0)
        landed = sum(1 for firing in firings[:-100] if raw.get(KEY_PREFIX + firing) == "a")
        assert 0 < landed < 4_900, landed  # it did fail mid-batch
        assert answers == [True] * 5_000  # b's 100 too: after a failure the database decides
        [error] = records(caplog, logging.ERROR)
        assert "failed a claim" in error.getMessage() and "maxmemory" in error.getMessage()
        # The breaker is open: the next claims skip Redis without asking it.
        raw.config_resetstat()
        assert await claims.claim_many(firings[-100:], "a", TTL) == [True] * 100
        assert "cmdstat_set" not in raw.info("commandstats")
    finally:
        await claims.close()
