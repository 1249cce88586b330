"""The firings a scheduler pass pops are claimed in one call; only those won
are started, and those lost go to the claimed-elsewhere hook."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest

from crontrio.common.claims.memory import MemoryClaims
from crontrio.common.cron import CronSchedule
from crontrio.common.model import OVERLAP_ALLOW, OVERLAP_SKIP, Job, firing_id
from crontrio.common.schedule import Schedule
from crontrio.dispatcher.firing import FiringHooks, FiringRunner
from crontrio.dispatcher.metrics import CLAIMED_ELSEWHERE
from crontrio.dispatcher.run_records import RunRecords
from crontrio.dispatcher.scheduler import BatchFiring, Scheduler


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.mark.asyncio
async def test_firings_popped_together_are_claimed_in_one_call() -> None:
    schedule = Schedule()
    now = wall_ms()
    allow = [Job(id=i, name=f"a{i}", spec="* * * * * *", command="true", overlap_policy=OVERLAP_ALLOW) for i in range(1, 51)]
    skip = Job(id=99, name="s", spec="* * * * * *", command="true", overlap_policy=OVERLAP_SKIP)
    for job in [*allow, skip]:
        schedule.upsert(job, CronSchedule.parse(job.spec, "UTC"), now)
    claim_calls: list[list[tuple[Job, int]]] = []
    started: list[tuple[int, int]] = []
    fired_alone: list[tuple[int, int]] = []
    done = asyncio.Event()

    async def claim(firings: list[tuple[Job, int]]) -> list[tuple[Job, int]]:
        claim_calls.append(list(firings))
        return [f for f in firings if f[0].id % 2 == 0]  # "another dispatcher" won the odd ones

    async def fire_claimed(job: Job, fire_ms: int) -> None:
        started.append((job.id, fire_ms))
        if len(started) == 25:
            done.set()

    async def fire(job: Job, fire_ms: int) -> None:
        fired_alone.append((job.id, fire_ms))

    # Dispatch ahead a whole second: every allow job's next firing is popped in one pass.
    scheduler = Scheduler(schedule, fire, dispatch_ahead_ms=1_000, batch=BatchFiring(claim, fire_claimed))
    loop_task = asyncio.create_task(scheduler.run())
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        scheduler.stop()
        await loop_task
    first = claim_calls[0]
    assert sorted(job.id for job, _ in first) == list(range(1, 51))  # the whole pass, in one call
    [instant] = {fire_ms for _, fire_ms in first}
    assert sorted(started[:25]) == [(i, instant) for i in range(2, 51, 2)]  # only the firings won start
    # The skip job waits for its time and is claimed on its own then, never ahead in the batch.
    assert all(job.id != skip.id for call in claim_calls for job, _ in call)
    assert all(fire_ms <= wall_ms() for _, fire_ms in fired_alone)


@pytest.mark.asyncio
async def test_the_runner_claims_a_batch_and_hands_the_losers_to_the_hook() -> None:
    claims = MemoryClaims()
    jobs = [Job(id=i, name=f"j{i}", spec="* * * * * *", command="true") for i in range(1, 7)]
    for job in jobs[:3]:
        assert await claims.claim(firing_id(job.id, 5_000), "other", 60_000)
    elsewhere: list[tuple[int, int]] = []
    runner = FiringRunner(
        RunRecords("me"),
        claims,
        cast(Any, None),
        cast(Any, None),
        cast(Any, None),
        hooks=FiringHooks(on_claimed_elsewhere=lambda job, ms: elsewhere.append((job.id, ms))),
    )
    won = await runner.claim([(job, 5_000) for job in jobs])
    assert [(job.id, ms) for job, ms in won] == [(4, 5_000), (5, 5_000), (6, 5_000)]
    assert elsewhere == [(1, 5_000), (2, 5_000), (3, 5_000)]
    assert runner.metrics.registry.get_sample_value("crontrio_firings_total", {"outcome": CLAIMED_ELSEWHERE}) == 3
    # Granted once: a second batch of the same firings wins none.
    assert await runner.claim([(job, 5_000) for job in jobs]) == []
    assert len(elsewhere) == 9
