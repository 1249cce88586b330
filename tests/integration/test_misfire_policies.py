"""MisfireTracker on a real SQLite store: once run-history writes keep up, the
firings a job misfired follow its misfire policy (skip, run_once, run_all),
and a job paused or deleted meanwhile runs none of them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from crontrio.common import status
from crontrio.common.config import DatabaseConfig
from crontrio.common.model import MISFIRE_RUN_ALL, MISFIRE_RUN_ONCE, MISFIRE_SKIP, TRIGGER_CATCH_UP, Job
from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.engine import make_engine
from crontrio.common.store.migrate import ensure_schema
from crontrio.common.store.sql_store import SqlStore
from crontrio.dispatcher.misfire import MisfireTracker
from crontrio.dispatcher.recorder import RunRecorder
from testing_support.services import wait_until

GRACE_S = 1.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    cfg = DatabaseConfig(driver="sqlite", path=str(tmp_path / "store.db"))
    engine = make_engine(cfg)
    ensure_schema(engine, cfg)
    s = SqlStore(engine)
    yield s
    s.close()


def every_second(job_id: int, policy: str) -> Job:
    return Job(id=job_id, name=f"j{job_id}", spec="* * * * * *", command="true", misfire_policy=policy)


async def settle(store: SqlStore, jobs: dict[int, Job], current: dict[int, Job]) -> list[tuple[int, int, str]]:
    """Note firings 10 s to 5 s ago of each job as misfired; settle them; return what was asked to run."""
    async_store = AsyncStore(store)
    recorder = RunRecorder(async_store, batch_ms=0)
    recorder.start()
    tracker = MisfireTracker(async_store, recorder, "d1", GRACE_S)
    ran: list[tuple[int, int, str]] = []
    tasks: list[asyncio.Task[None]] = []

    async def run_firing(job: Job, ms: int, trigger: str, *_: Any, **__: Any) -> None:
        ran.append((job.id, ms, trigger))

    tracker.run_firing = run_firing
    tracker.spawn = lambda work, name: tasks.append(asyncio.create_task(work, name=name))
    tracker.current_job = current.get
    now = time.time_ns() // 1_000_000 // 1000 * 1000
    for job in jobs.values():
        tracker.note(job, now - 10_000, "test")
        tracker.note(job, now - 5_000, "test")
    loop = asyncio.create_task(tracker.run())
    try:
        # Every job's firings are settled: recorded (missed) or asked to run.
        await wait_until(lambda: all(len(rows(store, j)) + len([r for r in ran if r[0] == j]) >= 6 for j in jobs), 10, "settled")
        await asyncio.gather(*tasks)
    finally:
        loop.cancel()
        await recorder.close()
        await async_store.close()
    return sorted(ran)


def rows(store: SqlStore, job_id: int) -> list[tuple[int, str, str]]:
    """(scheduled_ms, status, error) of the job's runs, straight from the table."""
    with store.engine.connect() as conn:
        found = conn.execute(text("SELECT scheduled_ms, status, error FROM runs WHERE job_id = :j"), {"j": job_id})
        return sorted((int(r[0]), str(r[1]), str(r[2])) for r in found)


def missed(store: SqlStore, job_id: int) -> list[int]:
    return [ms for ms, st, _ in rows(store, job_id) if st == status.MISSED]


async def test_each_policy_once_the_database_keeps_up(store: SqlStore) -> None:
    jobs = {1: every_second(1, MISFIRE_SKIP), 2: every_second(2, MISFIRE_RUN_ONCE), 3: every_second(3, MISFIRE_RUN_ALL)}
    ran = await settle(store, jobs, jobs)
    span = missed(store, 1)
    assert len(span) == 6 and span == list(range(span[0], span[0] + 6000, 1000))  # skip: all six recorded missed
    assert [r for r in ran if r[0] == 1] == []
    assert [r for r in ran if r[0] == 2] == [(2, span[-1], TRIGGER_CATCH_UP)]  # run_once: the latest
    assert missed(store, 2) == span[:-1]
    assert [r[1] for r in ran if r[0] == 3] == span and missed(store, 3) == []  # run_all: each


async def test_a_job_paused_or_deleted_meanwhile_runs_nothing(store: SqlStore) -> None:
    jobs = {2: every_second(2, MISFIRE_RUN_ONCE), 3: every_second(3, MISFIRE_RUN_ALL)}
    assert await settle(store, jobs, {}) == []
    assert len(missed(store, 2)) == 6 and len(missed(store, 3)) == 6
    assert all("paused or deleted" in error for _, _, error in rows(store, 2))


async def test_many_jobs_in_one_pass_each_get_their_own_policy_and_the_log_sums_up(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    # More jobs than the log names one by one: one write for all their
    # missed records, each job's policy still its own.
    policies = [MISFIRE_SKIP, MISFIRE_RUN_ONCE, MISFIRE_RUN_ALL]
    jobs = {i: every_second(i, policies[i % 3]) for i in range(1, 61)}
    with caplog.at_level("WARNING", logger="crontrio.dispatcher.misfire"):
        ran = await settle(store, jobs, jobs)
    for job_id, job in jobs.items():
        runs = [r[1] for r in ran if r[0] == job_id]
        if job.misfire_policy == MISFIRE_SKIP:
            assert runs == [] and len(missed(store, job_id)) == 6, job_id
        elif job.misfire_policy == MISFIRE_RUN_ONCE:
            assert len(runs) == 1 and len(missed(store, job_id)) == 5 and runs[0] > max(missed(store, job_id)), job_id
        else:
            assert len(runs) == 6 and missed(store, job_id) == [], job_id
    named = [r for r in caplog.records if r.getMessage().startswith("job j") and "misfired while" in r.getMessage()]
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("and 40 more jobs")]
    assert len(named) == 20 and len(summary) == 1, [r.getMessage() for r in caplog.records]
    # The 40 jobs not named: 6 firings each.
    assert "240 firings misfired" in summary[0], summary
