"""The monitor's two scans read only what they may act on, filtered by the
database (SQLite and MariaDB): orphans (active runs of dispatchers not
live) and runs started long enough ago to be past a timeout."""

from __future__ import annotations

from crontrio.common import status
from crontrio.common.model import RunRecord, make_run_id
from crontrio.common.store.sql_store import SqlStore


def _run(job_id: int, scheduled: int, dispatcher: str, run_status: str, started: int = 0) -> RunRecord:
    return RunRecord(
        run_id=make_run_id(job_id, scheduled, 1, 0),
        job_id=job_id,
        job_name=f"job{job_id}",
        scheduled_ms=scheduled,
        attempt=1,
        status=run_status,
        dispatcher=dispatcher,
        created_ms=scheduled,
        started_ms=started,
        output=b"tail",
    )


def test_orphans_are_the_active_runs_of_dispatchers_not_live(store: SqlStore) -> None:
    rows = [
        _run(1, 1000, "live@1", status.RUNNING, 1000),
        _run(2, 1000, "dead@1", status.RUNNING, 1000),
        _run(3, 2000, "dead@1", status.PENDING),
        _run(4, 500, "dead@1", status.SUCCEEDED, 500),
        _run(5, 3000, "gone@2", status.PENDING),
    ]
    store.write_runs(rows, [])
    found = store.active_runs_not_of(["live@1"], 100)
    assert [r.job_id for r in found] == [2, 3, 5]  # oldest first; the finished one and the live one's left out
    assert all(r.output == b"" for r in found)  # the output column is not read
    assert [r.job_id for r in store.active_runs_not_of(["live@1", "dead@1", "gone@2"], 100)] == []
    assert [r.job_id for r in store.active_runs_not_of([], 100)] == [1, 2, 3, 5]  # nobody live: all are orphans
    assert [r.job_id for r in store.active_runs_not_of(["live@1"], 2)] == [2, 3]


def test_only_runs_started_before_the_bound_are_read(store: SqlStore) -> None:
    rows = [
        _run(1, 1000, "d@1", status.RUNNING, 1_000),
        _run(2, 1000, "d@1", status.RUNNING, 9_000),
        _run(3, 1000, "d@1", status.PENDING),
        _run(4, 1000, "d@1", status.SUCCEEDED, 500),
        _run(5, 2000, "d@1", status.RUNNING, 4_000),
    ]
    store.write_runs(rows, [])
    assert [r.job_id for r in store.running_started_before(5_000, 100)] == [1, 5]
    assert [r.job_id for r in store.running_started_before(5_000, 1)] == [1]
    assert store.running_started_before(1_000, 100) == []
