"""The recorder's backlog under a locked database (a real SQLite file whose
write lock another connection holds with BEGIN IMMEDIATE): firing inserts
queued for writing are bounded in number, the others wait for room until
their deadline; other writes are never dropped."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.common.config import DatabaseConfig
from crontrio.common.model import RunRecord, make_run_id
from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.engine import make_engine
from crontrio.common.store.migrate import ensure_schema
from crontrio.common.store.sql_store import SqlStore
from crontrio.dispatcher.recorder import RecordDroppedError, RunRecorder
from testing_support.services import wait_until


@pytest.fixture
def db_path(tmp_path: Path) -> Iterator[Path]:
    cfg = DatabaseConfig(driver="sqlite", path=str(tmp_path / "store.db"))
    engine = make_engine(cfg)
    ensure_schema(engine, cfg)
    engine.dispose()
    yield tmp_path / "store.db"


def record(n: int) -> RunRecord:
    return RunRecord(
        run_id=make_run_id(1, n * 1000, 1), job_id=1, job_name="j", scheduled_ms=n * 1000, attempt=1, status=status.PENDING
    )


async def test_a_locked_database_keeps_the_backlog_bounded_and_drops_late_firings(db_path: Path) -> None:
    store = SqlStore(make_engine(DatabaseConfig(driver="sqlite", path=str(db_path))))
    async_store = AsyncStore(store)
    recorder = RunRecorder(async_store, batch_ms=0, max_backlog=5)
    recorder.start()
    lock = sqlite3.connect(db_path, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the write lock, held as another writer would
    try:
        far = now_ms() + 60_000
        first = asyncio.ensure_future(recorder.insert(record(0), deadline_ms=far))
        await wait_until(lambda: recorder.writing_seconds() > 0, 5, "the first commit to wait on the lock")
        soon = now_ms() + 300
        short = [asyncio.ensure_future(recorder.insert(record(n), deadline_ms=soon)) for n in (1, 2, 3)]
        kept = asyncio.ensure_future(recorder.insert(record(4), deadline_ms=far))
        history = recorder.update(record(0).run_id, status=status.RUNNING)  # not a firing: never dropped
        await wait_until(lambda: recorder.backlog == 5, 5, "the five to be queued")
        # Every second's firings keep coming while the lock is held: they
        # wait for room (not queued: the backlog stays bounded), and those
        # whose deadline passes first are dropped, never written late.
        waiting = [asyncio.ensure_future(recorder.insert(record(n), deadline_ms=far)) for n in range(5, 25)]
        doomed = [asyncio.ensure_future(recorder.insert(record(n), deadline_ms=soon)) for n in range(25, 28)]
        await wait_until(lambda: now_ms() > soon + 100, 5, "the short deadlines to pass")
        for future in doomed:
            with pytest.raises(RecordDroppedError, match="backlog stayed full"):
                await asyncio.wait_for(future, 5)
        assert recorder.backlog <= 5 and not any(future.done() for future in waiting)
    finally:
        lock.rollback()
        lock.close()
    assert await asyncio.wait_for(first, 40) is True
    for future in short:
        with pytest.raises(RecordDroppedError):
            await asyncio.wait_for(future, 10)
    assert await asyncio.wait_for(kept, 10) is True
    # Let in once the database writes again: all written, none lost.
    assert await asyncio.wait_for(asyncio.gather(*waiting), 20) == [True] * len(waiting)
    await asyncio.wait_for(history, 10)
    await recorder.close()
    await async_store.close()  # closes the store too
    with sqlite3.connect(db_path) as conn:
        rows = {(int(ms) // 1000, str(st)) for ms, st in conn.execute("SELECT scheduled_ms, status FROM runs WHERE job_id = 1")}
    # Nothing past its deadline was written; everything let in in time was.
    assert rows == {(0, status.RUNNING), (4, status.PENDING)} | {(n, status.PENDING) for n in range(5, 25)}
