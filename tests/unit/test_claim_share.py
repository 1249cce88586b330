"""A burst's firings are spread over the live dispatchers: each claims its
own share at once and the others' only after a grace, so a live peer keeps
its share and a dead one's is still fired."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from typing import Any, cast

import pytest

from crontrio.common.claims.memory import MemoryClaims
from crontrio.common.model import Job, firing_id
from crontrio.dispatcher.claim_share import SHARE_GRACE_SECONDS, preferred, split_share
from crontrio.dispatcher.firing import FiringHooks, FiringRunner
from crontrio.dispatcher.run_records import RunRecords

PEERS = ["d1@a", "d2@b", "d3@c"]


def test_every_dispatcher_gets_a_fair_share_and_all_agree() -> None:
    ids = [firing_id(i, 60_000) for i in range(3000)]
    owners = Counter(preferred(f, PEERS) for f in ids)
    assert set(owners) == set(PEERS)
    assert all(800 <= n <= 1200 for n in owners.values()), owners
    # The same answer whatever order the list of peers comes in.
    assert all(preferred(f, PEERS) == preferred(f, list(reversed(PEERS))) for f in ids)
    # A peer leaving moves only its own share.
    without = [p for p in PEERS if p != "d3@c"]
    assert all(preferred(f, without) == preferred(f, PEERS) for f in ids if preferred(f, PEERS) != "d3@c")


def test_alone_or_unlisted_a_dispatcher_takes_everything() -> None:
    ids = [firing_id(i, 1000) for i in range(10)]
    assert split_share(ids, ids, "d1@a", ["d1@a"]) == (ids, [])
    assert split_share(ids, ids, "d9@z", PEERS) == (ids, [])


def _runner(me: str, claims: MemoryClaims, fired: list[tuple[str, int]], tasks: list[asyncio.Task[None]]) -> FiringRunner:
    def spawn(work: Coroutine[Any, Any, None], name: str) -> None:
        tasks.append(asyncio.ensure_future(work))

    runner = FiringRunner(
        RunRecords(me), claims, cast(Any, None), cast(Any, None), cast(Any, None), hooks=FiringHooks(spawn=spawn)
    )

    async def fire_claimed(job: Job, scheduled_ms: int, trigger: str = "") -> None:
        fired.append((me, job.id))

    runner.fire_claimed = fire_claimed  # type: ignore[method-assign]  # the firing itself is not under test
    runner.live_dispatchers = lambda: PEERS[:2]
    return runner


@pytest.mark.asyncio
async def test_two_live_dispatchers_split_a_burst_and_each_firing_runs_once() -> None:
    claims = MemoryClaims()
    fired: list[tuple[str, int]] = []
    tasks: list[asyncio.Task[None]] = []
    jobs = [Job(id=i, name=f"j{i}", spec="* * * * * *", command="true") for i in range(400)]
    burst = [(job, 60_000) for job in jobs]
    one, two = _runner("d1@a", claims, fired, tasks), _runner("d2@b", claims, fired, tasks)
    won_one, won_two = await asyncio.gather(one.claim(burst), two.claim(burst))
    for job, _ in won_one:
        fired.append(("d1@a", job.id))
    for job, _ in won_two:
        fired.append(("d2@b", job.id))
    await asyncio.gather(*tasks)
    assert sorted(job_id for _, job_id in fired) == list(range(400)), "a firing ran twice or never"
    shares = Counter(who for who, _ in fired)
    assert 120 <= shares["d1@a"] <= 280 and 120 <= shares["d2@b"] <= 280, shares


@pytest.mark.asyncio
async def test_a_dead_peers_share_is_claimed_after_the_grace() -> None:
    claims = MemoryClaims()
    fired: list[tuple[str, int]] = []
    tasks: list[asyncio.Task[None]] = []
    jobs = [Job(id=i, name=f"j{i}", spec="* * * * * *", command="true") for i in range(100)]
    alone = _runner("d1@a", claims, fired, tasks)  # d2@b is listed but never claims
    loop = asyncio.get_running_loop()
    began = loop.time()
    won = await alone.claim([(job, 60_000) for job in jobs])
    assert 0 < len(won) < 100  # its own share at once
    assert not fired
    await asyncio.gather(*tasks)
    assert loop.time() - began >= SHARE_GRACE_SECONDS
    assert sorted([job.id for job, _ in won] + [job_id for _, job_id in fired]) == list(range(100))
