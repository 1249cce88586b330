"""Unacknowledged journal results older than [executor] keep_unacked_days
are reported (WARNING: count, run ids) and dropped; recent ones stay."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from crontrio.common.clock import now_ms
from crontrio.executor.journal import Journal, StartedRun
from crontrio.executor.journal_retention import DAY_MS, drop_stale_results
from crontrio.protos import crontrio_pb2
from testing_support.services import ServiceProcess, free_port, is_serving, wait_for, write_conf

HOUR_MS = 3600 * 1000


def result(run_id: str, finished_ms: int) -> crontrio_pb2.RunFinished:
    return crontrio_pb2.RunFinished(run_id=run_id, status="succeeded", started_ms=finished_ms - 1000, finished_ms=finished_ms)


async def fill(journal: Journal, now: int) -> None:
    """Two results past a 7-day limit, two within it, an acked one and a
    run still going (started 30 days ago: not a result, never dropped)."""
    for run_id, age in (("old-b", 8 * DAY_MS), ("recent-a", 6 * DAY_MS), ("old-a", 30 * DAY_MS), ("recent-b", HOUR_MS)):
        await journal.put(result(run_id, now - age))
    await journal.put(result("acked", now - 20 * DAY_MS))
    await journal.ack(["acked"], now - 20 * DAY_MS)
    going = StartedRun("going", now - 30 * DAY_MS, "h", "e", "shell", 1, "j", now - 30 * DAY_MS, 1)
    await journal.begin(going)


async def test_old_unacked_results_are_dropped_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(str(tmp_path / "journal.db"))
    await journal.open()
    now = now_ms()
    await fill(journal, now)

    with caplog.at_level(logging.WARNING, logger="crontrio.executor.journal_retention"):
        dropped = await drop_stale_results(journal, 7, now)

    assert dropped == ["old-a", "old-b"]  # oldest first
    assert [r.run_id for r in await journal.results()] == ["recent-a", "recent-b"]
    assert [r.run_id for r in await journal.unfinished()] == ["going"]
    assert (await journal.lookup("acked")).acked_ms > 0
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1
    assert "dropped 2 result(s)" in warning[0].getMessage() and "old-a .. old-b" in warning[0].getMessage()

    caplog.clear()
    assert await drop_stale_results(journal, 7, now) == []  # nothing more, nothing logged
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    await journal.close()


async def test_an_executor_drops_stale_results_when_it_starts(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = Journal(str(path))
    await journal.open()
    await fill(journal, now_ms())
    await journal.close()

    address = f"127.0.0.1:{free_port()}"
    conf = write_conf(
        tmp_path,
        {"executor": {"listen": address, "journal": str(path), "keep_unacked_days": "7"}, "log": {"level": "INFO"}},
    )
    proc = ServiceProcess("executor", conf, tmp_path / "executor.log", env={"NO_PROXY": "*", "no_proxy": "*"})
    try:
        wait_for(lambda: proc.proc.poll() is None and is_serving(address), 20, f"executor on {address} to serve")

        def left() -> list[str]:
            with sqlite3.connect(path, timeout=10) as conn:
                return [row[0] for row in conn.execute("SELECT run_id FROM results ORDER BY finished_ms")]

        # "going" died with the previous process: recovered at start as a
        # lost result finished now, so it stays.
        wait_for(lambda: left() == ["recent-a", "recent-b", "going"], 20, "the stale results to be dropped")
        wait_for(lambda: "dropped 2 result(s)" in proc.log_text(), 10, "the drop to be logged")
        assert "old-a .. old-b" in proc.log_text()
    finally:
        code = proc.stop()
    assert code == 0, proc.log_text()
