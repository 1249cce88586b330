"""JobSync.apply: stored jobs into the Schedule, with shared parsed schedules."""

from __future__ import annotations

import dataclasses

from sqlalchemy import create_engine

from crontrio.common.cron import CronSchedule
from crontrio.common.model import Dependency, Job
from crontrio.common.schedule import Schedule
from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.sql_store import SqlStore
from crontrio.dispatcher.job_sync import JobSync

T0 = 1_800_000_000_000  # 2027-01-15T08:00:00Z, a Friday
HOUR = 3600_000


def make_sync() -> tuple[JobSync, Schedule]:
    schedule = Schedule()
    # apply() never reads the store: this one has no tables.
    sync = JobSync(AsyncStore(SqlStore(create_engine("sqlite://"))), schedule, lambda: None, lambda: T0)
    return sync, schedule


def test_jobs_with_one_spec_share_it_and_an_edit_replans_only_that_job() -> None:
    sync, schedule = make_sync()
    a = Job(id=1, name="a", spec="0 12 * * *", command="true")
    sync.apply(a)
    sync.apply(Job(id=2, name="b", spec="0  12 * * *", command="true"))
    assert schedule.next_fire_ms(1) == schedule.next_fire_ms(2) == T0 + 4 * HOUR
    sync.apply(dataclasses.replace(a, spec="0 9 * * *"))
    assert schedule.next_fire_ms(1) == T0 + HOUR
    assert schedule.next_fire_ms(2) == T0 + 4 * HOUR
    assert schedule.job(1) is not None and schedule.job(1).spec == "0 9 * * *"  # type: ignore[union-attr]
    due, _ = schedule.pop_due(T0 + 4 * HOUR, 7 * 24 * HOUR)
    assert [(j.id, ms - T0) for j, ms in due] == [(1, HOUR), (2, 4 * HOUR)]


def test_hashed_jobs_keep_their_own_times() -> None:
    sync, schedule = make_sync()
    names = [f"report-{i}" for i in range(8)]
    for i, name in enumerate(names, 1):
        sync.apply(Job(id=i, name=name, spec="H H * * *", command="true"))
    for i, name in enumerate(names, 1):
        assert schedule.next_fire_ms(i) == CronSchedule.parse("H H * * *", hash_key=name).next_after(T0)
    assert len({schedule.next_fire_ms(i) for i in range(1, len(names) + 1)}) > 1


def test_a_stored_job_that_is_already_normal_is_kept_as_is() -> None:
    sync, schedule = make_sync()
    stored = Job(id=7, name="x", spec="*/5 * * * *", timezone="Europe/Berlin", command="true")
    sync.apply(stored)
    assert sync.jobs[7] is stored and schedule.job(7) is stored  # one object, not copies
    sync.apply(Job(id=8, name="y", spec="*/5  * * * *", timezone="europe/berlin", command="true"))
    assert (sync.jobs[8].spec, sync.jobs[8].timezone) == ("*/5 * * * *", "Europe/Berlin")


def test_an_invalid_or_paused_job_is_not_scheduled() -> None:
    sync, schedule = make_sync()
    sync.apply(Job(id=1, name="feb30", spec="0 0 30 2 *", command="true"))
    assert schedule.job(1) is None and "never fires" in sync.invalid[1]
    sync.apply(Job(id=1, name="feb30", spec="0 0 28 2 *", command="true"))
    assert schedule.job(1) is not None and 1 not in sync.invalid
    sync.apply(Job(id=1, name="feb30", spec="0 0 28 2 *", command="true", enabled=False))
    assert schedule.job(1) is None and 1 not in sync.jobs


def test_pausing_invalidating_or_deleting_a_job_says_so_an_edit_does_not() -> None:
    # What cancels firings already sent ahead to an executor.
    sync, _ = make_sync()
    told: list[tuple[int, str]] = []
    sync.on_unscheduled = lambda job_id, why: told.append((job_id, why))
    job = Job(id=1, name="nightly", spec="0 2 * * *", command="true")
    sync.apply(job)
    sync.apply(dataclasses.replace(job, command="echo edited"))
    assert told == []
    sync.apply(dataclasses.replace(job, enabled=False))
    assert told == [(1, "job nightly was paused before this firing's scheduled time")]
    sync.apply(job)
    sync.apply(dataclasses.replace(job, spec="0 0 30 2 *"))
    assert told[-1][0] == 1 and "became invalid" in told[-1][1]
    sync.apply(job)
    sync.forget(1)
    assert told[-1] == (1, "job id 1 was deleted before this firing's scheduled time")
    assert len(told) == 3


def test_dependents_are_known_for_paused_and_invalid_jobs_too() -> None:
    sync, _ = make_sync()
    sync.apply(Job(id=1, name="load", spec="@daily", command="true"))
    sync.apply(Job(id=2, name="report", spec="", command="true", after=(Dependency("load"),)))
    sync.apply(Job(id=3, name="paused-report", spec="", command="true", after=(Dependency("load"),), enabled=False))
    sync.apply(Job(id=4, name="broken", spec="0 0 30 2 *", command="true", after=(Dependency("load"),)))
    assert sync.dependents_of("load") == [2, 3, 4]
    sync.apply(Job(id=2, name="report", spec="@daily", command="true"))  # no longer after load
    sync.forget(4)
    assert sync.dependents_of("load") == [3] and sync.dependents_of("report") == []


def test_an_edit_says_whether_the_new_schedule_fires_at_an_instant() -> None:
    # What replaces (or cancels) firings already sent ahead to an executor.
    sync, _ = make_sync()
    told: list[tuple[Job, bool, bool]] = []
    at_two, at_three = T0 + 18 * HOUR, T0 + 19 * HOUR  # 02:00 and 03:00 the next day
    sync.on_edited = lambda job, fires_at: told.append((job, fires_at(at_two), fires_at(at_three)))
    job = Job(id=1, name="nightly", spec="0 2 * * *", command="true")
    sync.apply(job)
    assert told == [], "a new job has nothing sent ahead"
    edited = dataclasses.replace(job, command="echo edited")
    sync.apply(edited)
    assert told == [(edited, True, False)]
    moved = dataclasses.replace(job, spec="0 3 * * *")
    sync.apply(moved)
    assert told[-1] == (moved, False, True)


def test_a_full_load_wakes_the_loop_once_a_single_apply_each_time() -> None:
    import asyncio
    from typing import Any, cast

    jobs = [Job(id=i, name=f"j{i}", spec="0 12 * * *", command="true") for i in range(1, 51)]

    class Store:
        async def revision(self) -> int:
            return 7

        async def list_jobs(self) -> list[Job]:
            return jobs

    wakes: list[int] = []
    schedule = Schedule()
    sync = JobSync(cast(Any, Store()), schedule, lambda: wakes.append(len(schedule)), lambda: T0)
    asyncio.run(sync.load_all())
    assert wakes == [50]  # once, with every job in place
    assert sync.revision == 7 and len(schedule) == 50
    sync.apply(dataclasses.replace(jobs[0], spec="0 13 * * *"))
    sync.apply(Job(id=99, name="new", spec="0 1 * * *", command="true"))
    assert wakes == [50, 50, 51]  # outside a load, every change wakes it
