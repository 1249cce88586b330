"""The executor journal groups concurrent writes into shared transactions."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from crontrio.executor.journal import Journal, StartedRun
from testing_support.services import REPO


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


# ---------------------------------------------------------------- failed commits


async def deferred_check(journal: Journal) -> None:
    """A table whose rows fail at COMMIT, not at INSERT: what a full disk
    does to a WAL journal (its pages are written at COMMIT)."""

    def setup() -> None:
        db = journal._conn()
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")

    await journal._call(setup)


# The journal the calls below write to (a call gets only its arguments).
_current_journal: list[Journal] = []


def orphan_child(calls: list[int] | None = None) -> None:
    """A write whose COMMIT fails: a child row without its parent."""
    if calls is not None:
        calls.append(1)
    _current_journal[0]._conn().execute("INSERT INTO child (parent) VALUES (42)")


async def test_a_failed_commit_gives_each_call_exactly_one_outcome(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "journal.db"))
    await journal.open()
    _current_journal[:] = [journal]
    await deferred_check(journal)
    # One batch: the shared COMMIT fails, then each call goes alone and the
    # bad one's own COMMIT fails. Each caller must get its own outcome:
    # success only for what was committed.
    results = await asyncio.gather(
        journal.begin(started(1)),
        journal._submit(orphan_child),
        journal.begin(started(2)),
        journal._submit(orphan_child),
        journal.begin(started(3)),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None and results[4] is None, results
    assert isinstance(results[1], sqlite3.IntegrityError) and isinstance(results[3], sqlite3.IntegrityError), results
    assert {r.run_id for r in await journal.unfinished()} == {"1-1-1", "1-2-1", "1-3-1"}
    # The failed transaction was rolled back: the connection takes new ones.
    await asyncio.wait_for(journal.begin(started(4)), timeout=5)
    await journal.close()
    with sqlite3.connect(tmp_path / "journal.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM child").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM started").fetchone() == (4,)


async def test_a_lone_call_whose_commit_fails_is_run_once(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "journal.db"))
    await journal.open()
    _current_journal[:] = [journal]
    await deferred_check(journal)
    calls: list[int] = []
    with pytest.raises(sqlite3.IntegrityError):
        await journal._submit(orphan_child, calls)
    assert calls == [1], "a failed lone call was run again"
    await journal.close()


async def test_failed_writes_are_reported_once_with_their_cause(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(str(tmp_path / "journal.db"))
    await journal.open()
    _current_journal[:] = [journal]
    await deferred_check(journal)
    caplog.set_level(logging.INFO, logger="crontrio.executor.journal_health")
    for _ in range(3):  # three episodes, each of a failed batch and failed single calls
        await asyncio.gather(*(journal._submit(orphan_child) for _ in range(20)), return_exceptions=True)
        await journal.begin(started(len(caplog.records) + 100))  # a success in between
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in caplog.records]
    assert "a write failed: FOREIGN KEY constraint failed" in errors[0].getMessage()
    assert journal.health.failures == 3 * 21  # each batch, then each of its calls
    recovered = [r.getMessage() for r in caplog.records if "succeeded again" in r.getMessage()]
    assert len(recovered) == 1, recovered
    await journal.close()


# A child process: begins runs under a file size limit, printing what each begin reported.
_CHILD = """
import asyncio, json, resource, sys
from crontrio.executor.journal import Journal, StartedRun

async def main(path, waves, per_wave):
    journal = Journal(path)
    await journal.open()
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
    reported = {}
    for wave in range(waves):
        runs = [StartedRun(f"1-{wave}-{i}", 1, "h", "e", "shell", 1, "j" * 2000, 1, 1) for i in range(per_wave)]
        outcomes = await asyncio.gather(*(journal.begin_if_new(r) for r in runs), return_exceptions=True)
        reported.update((r.run_id, o is None) for r, o in zip(runs, outcomes))
    print(json.dumps({"reported": reported}))

asyncio.run(main(sys.argv[1], 12, 25))
"""


def test_under_a_file_size_limit_a_begin_reported_done_is_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(96 * 1024)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout.splitlines()[-1])
    reported: dict[str, bool] = out["reported"]
    with sqlite3.connect(path) as conn:
        on_disk = {row[0] for row in conn.execute("SELECT run_id FROM started")}
    succeeded = {run_id for run_id, ok in reported.items() if ok}
    assert succeeded and len(succeeded) < len(reported), "the limit should let some claims through, not all"
    assert not succeeded - on_disk, f"reported done, not on disk: {sorted(succeeded - on_disk)[:5]}"
    assert not on_disk - succeeded, f"on disk, reported failed: {sorted(on_disk - succeeded)[:5]}"
    assert child.stderr.count("a write failed") == 1, child.stderr
