"""dispatch_ahead_ms: overlap=allow firings are handed over early, the
others exactly at their time (they must look at the previous run then)."""

from __future__ import annotations

import asyncio
import time

import pytest

from crontrio.common.cron import CronSchedule
from crontrio.common.model import OVERLAP_ALLOW, OVERLAP_SKIP, Job
from crontrio.common.schedule import Schedule
from crontrio.dispatcher.scheduler import Scheduler, between_instants


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


async def first_fire_times(policy: str, ahead_ms: int) -> tuple[int, int]:
    """(scheduled ms, wall ms when fire was called) of a '* * * * * *' job's first firing."""
    schedule = Schedule()
    job = Job(id=1, name="j", spec="* * * * * *", command="true", overlap_policy=policy)
    schedule.upsert(job, CronSchedule.parse(job.spec, "UTC"), wall_ms())
    fired: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()

    async def fire(_job: Job, fire_ms: int) -> None:
        if not fired.done():
            fired.set_result((fire_ms, wall_ms()))

    scheduler = Scheduler(schedule, fire, dispatch_ahead_ms=ahead_ms)
    loop_task = asyncio.create_task(scheduler.run())
    try:
        return await asyncio.wait_for(fired, 5)
    finally:
        scheduler.stop()
        await loop_task


@pytest.mark.asyncio
async def test_allow_jobs_are_handed_over_ahead_of_their_time() -> None:
    scheduled, called = await first_fire_times(OVERLAP_ALLOW, 600)
    # At least 600 ms ahead, rounded up to leave half-way between two seconds.
    assert scheduled - between_instants(600) <= called < scheduled, (scheduled, called)


@pytest.mark.asyncio
async def test_other_policies_fire_at_their_time_not_ahead() -> None:
    scheduled, called = await first_fire_times(OVERLAP_SKIP, 600)
    assert called >= scheduled, (scheduled, called)


@pytest.mark.asyncio
async def test_zero_ahead_fires_at_the_time() -> None:
    scheduled, called = await first_fire_times(OVERLAP_ALLOW, 0)
    assert called >= scheduled, (scheduled, called)
