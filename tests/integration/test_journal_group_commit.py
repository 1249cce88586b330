"""The executor journal groups concurrent writes into shared transactions."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from executor.journal import Journal, StartedRun


def started(i: int) -> StartedRun:
    return StartedRun(
        run_id=f"1-{i}-1", started_ms=i, host="h", executor="e", task="shell", job_id=1, job_name="j", scheduled_ms=i, attempt=1
    )


async def test_concurrent_writes_share_transactions_and_all_persist(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "journal.db"))
    await journal.open()
    before = journal.batches
    await asyncio.gather(*(journal.begin(started(i)) for i in range(500)))
    written = journal.batches - before
    assert written < 50, f"500 concurrent starts took {written} transactions"
    assert len(await journal.unfinished()) == 500
    await journal.close()
    # Durable: a fresh process (connection) sees every one.
    with sqlite3.connect(tmp_path / "journal.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM started").fetchone() == (500,)


async def test_a_failing_call_fails_alone(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "journal.db"))
    await journal.open()

    def explode() -> None:
        raise sqlite3.OperationalError("disk on fire")

    results = await asyncio.gather(
        journal.begin(started(1)), journal._submit(explode), journal.begin(started(2)), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], sqlite3.OperationalError)
    assert {r.run_id for r in await journal.unfinished()} == {"1-1-1", "1-2-1"}
    await journal.close()


async def test_a_lone_call_is_written_at_once(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "journal.db"))
    await journal.open()
    await asyncio.wait_for(journal.begin(started(1)), timeout=5)
    assert [r.run_id for r in await journal.unfinished()] == ["1-1-1"]
    await journal.close()
