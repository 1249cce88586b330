"""Misfire catch-up after long downtime: run_once runs the latest missed firing.

On a real SQLite store: the job's last run was long ago, more firings were
missed than catch-up ever runs (MAX_CATCH_UP_FIRINGS), and the one that is
started must be the latest, not the 1,000th after the last run.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from crontrio.common import status
from crontrio.common.config import DatabaseConfig
from crontrio.common.model import MISFIRE_RUN_ALL, MISFIRE_RUN_ONCE, Job, RunRecord, make_run_id
from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.engine import make_engine
from crontrio.common.store.migrate import ensure_schema
from crontrio.common.store.sql_store import SqlStore
from crontrio.dispatcher import catch_up as catch_up_mod
from crontrio.dispatcher.catch_up import MAX_CATCH_UP_FIRINGS, catch_up, missed_firings
from crontrio.dispatcher.recorder import RunRecorder

NOW = 1_800_000_000_000  # a whole second, fixed so the expected instants are exact
MISSED = 3000  # seconds of an every-second job since its last run: 3,000 missed firings


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    cfg = DatabaseConfig(driver="sqlite", path=str(tmp_path / "store.db"))
    engine = make_engine(cfg)
    ensure_schema(engine, cfg)
    s = SqlStore(engine)
    yield s
    s.close()


def every_second(policy: str) -> Job:
    return Job(
        id=7,
        name="often",
        spec="* * * * * *",
        command="true",
        misfire_policy=policy,
        catch_up_window_seconds=3600,
        created_ms=NOW - 86_400_000,
    )


def test_missed_firings_keeps_the_latest_when_there_are_too_many() -> None:
    last = NOW - MISSED * 1000
    missed = missed_firings(every_second(MISFIRE_RUN_ONCE), last, NOW)
    assert len(missed) == MAX_CATCH_UP_FIRINGS
    # The latest firing before now, and the ones just before it, in order.
    assert missed[-1] == NOW - 1000
    assert missed == list(range(NOW - MAX_CATCH_UP_FIRINGS * 1000, NOW, 1000))


def test_missed_firings_within_the_cap_are_all_there() -> None:
    last = NOW - 10_000
    assert missed_firings(every_second(MISFIRE_RUN_ALL), last, NOW) == list(range(last + 1000, NOW, 1000))


def test_missed_firings_honour_the_catch_up_window() -> None:
    job = Job(id=7, name="often", spec="* * * * * *", command="true", misfire_policy=MISFIRE_RUN_ALL, catch_up_window_seconds=5)
    assert missed_firings(job, NOW - 3_600_000, NOW) == list(range(NOW - 4000, NOW, 1000))


async def test_run_once_after_more_than_the_cap_runs_the_latest(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catch_up_mod, "now_ms", lambda: NOW)
    job = every_second(MISFIRE_RUN_ONCE)
    last = NOW - MISSED * 1000
    ran = RunRecord(
        run_id=make_run_id(job.id, last, 1),
        job_id=job.id,
        job_name=job.name,
        scheduled_ms=last,
        attempt=1,
        status=status.SUCCEEDED,
    )
    store.write_runs([ran], [])
    async_store = AsyncStore(store)
    recorder = RunRecorder(async_store, batch_ms=0)
    recorder.start()
    fired: list[int] = []
    spawned: list[Coroutine[Any, Any, None]] = []

    async def fire(_job: Job, ms: int, _trigger: str) -> None:
        fired.append(ms)

    def spawn(work: Coroutine[Any, Any, None], _name: str) -> None:
        spawned.append(work)

    try:
        started = await catch_up([job], async_store, recorder, fire, spawn, "d1")
        for work in spawned:
            await work
    finally:
        await recorder.close()
        await async_store.close()
    assert started == 1
    assert fired == [NOW - 1000]  # the latest missed firing, not the 1,000th after the last run
    # The others catch-up looked at are recorded missed, the latest of them just before it.
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT scheduled_ms FROM runs WHERE job_id = :j AND status = 'missed'"), {"j": job.id})
        missed = sorted(int(r[0]) for r in rows)
    assert missed == list(range(NOW - MAX_CATCH_UP_FIRINGS * 1000, NOW - 1000, 1000))
