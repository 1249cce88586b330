"""The database's write lock held longer than the misfire grace while
every-second jobs are due (real trio processes; another connection holds a
real BEGIN IMMEDIATE on the SQLite file): the dispatcher's backlog stays
bounded, no firing starts later than the grace, and once the lock is gone
each job's misfire policy applies: `skip` records the misfired firings
`missed`, `run_once` runs the latest of them once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from crontrio.common.clock import now_ms
from testing_support.services import wait_for
from testing_support.trio import make_trio, stop_trio

GRACE_S = 2
LOCK_S = 8
SKIP_JOBS = ("lk-a", "lk-b", "lk-c")
ONCE_JOB = "lk-once"


def test_a_locked_database_misfires_firings_instead_of_starting_them_late(tmp_path: Path) -> None:
    trio = make_trio(tmp_path, extra={"dispatcher": {"misfire_grace_seconds": str(GRACE_S), "record_backlog": "4"}})
    for service in ("executor", "dispatcher", "monitor"):
        trio.start(service)
    try:
        for name in (*SKIP_JOBS, ONCE_JOB):
            policy = "run_once" if name == ONCE_JOB else "skip"
            added = trio.cronctl("job", "add", "--name", name, "--spec", "* * * * * *", "--command", "true", "--misfire", policy)
            assert added.returncode == 0, added.stderr
        wait_for(lambda: len(trio.sql("SELECT 1 FROM runs WHERE status = 'succeeded'")) >= 8, 30, "runs to flow")

        lock = sqlite3.connect(trio.db_path, isolation_level=None, timeout=30)
        lock.execute("BEGIN IMMEDIATE")
        locked_ms = now_ms()
        try:
            # Held for LOCK_S: firings keep coming due meanwhile.
            wait_for(lambda: now_ms() - locked_ms >= LOCK_S * 1000, LOCK_S + 5, "the lock to have been held", interval=0.1)
        finally:
            lock.rollback()
            lock.close()
        released_ms = now_ms()

        # Firings due from a second into the lock until the grace before its
        # end had no chance to be recorded in time.
        low, high = locked_ms + 1000, released_ms - GRACE_S * 1000 - 500

        def settled() -> list[tuple[str, int, str, int, str, str]] | None:
            rows = trio.sql(
                "SELECT job_name, scheduled_ms, status, started_ms, error, trigger FROM runs WHERE scheduled_ms BETWEEN ? AND ?",
                (low, released_ms + 3000),
            )
            out = [(str(r[0]), int(r[1]), str(r[2]), int(r[3] or 0), str(r[4]), str(r[5])) for r in rows]
            window = [r for r in out if r[1] <= high]
            expected = len(range(-(-low // 1000) * 1000, high + 1, 1000))
            complete = all(len([r for r in window if r[0] == name]) == expected for name in (*SKIP_JOBS, ONCE_JOB))
            going = [r for r in out if r[2] in ("pending", "running")]
            once_ran = [r for r in out if r[0] == ONCE_JOB and r[5] == "catch_up"]
            return out if complete and once_ran and not going else None

        rows = wait_for(settled, 30, "every firing of the locked window to be settled")
        # skip: every firing that could not be recorded in time is recorded missed, none ran.
        skipped_jobs = [r for r in rows if r[0] in SKIP_JOBS and r[1] <= high]
        assert skipped_jobs and all(r[2] == "missed" and r[3] == 0 for r in skipped_jobs), skipped_jobs
        assert all("not recorded within" in r[4] or "misfired: recorded" in r[4] for r in skipped_jobs), skipped_jobs
        # run_once: one run, of the latest misfired firing, once the lock was gone; the others missed.
        once = [r for r in rows if r[0] == ONCE_JOB]
        caught_up = [r for r in once if r[5] == "catch_up"]
        assert len(caught_up) == 1 and caught_up[0][2] == "succeeded", once
        assert all(r[2] == "missed" for r in once if r[1] <= high)
        assert caught_up[0][1] == max(r[1] for r in once if r[2] == "missed" or r[5] == "catch_up")
        assert caught_up[0][3] >= released_ms - 200

        # No firing of a skip job started later than the grace (plus a second of slack for a busy machine).
        late = trio.sql(
            "SELECT job_name, scheduled_ms, started_ms FROM runs WHERE started_ms > 0 AND started_ms - scheduled_ms > ? "
            "AND job_name IN (?, ?, ?)",
            ((GRACE_S + 1) * 1000, *SKIP_JOBS),
        )
        assert not late, late
        log = trio.procs["dispatcher"].log_text()
        assert "run history backlog is full (4 firings waiting" in log  # bounded: refused, not queued
    finally:
        stop_trio(trio)
