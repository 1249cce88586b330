"""ListRuns' (scheduled_ms, run_id) cursor on every database backend: a page
boundary inside a millisecond shared by many runs loses and repeats nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from crontrio.common.config import DatabaseConfig
from crontrio.common.model import RunRecord
from crontrio.common.store.engine import make_engine
from crontrio.common.store.migrate import ensure_schema
from crontrio.common.store.sql_store import SqlStore


def _run(job_id: int, scheduled: int, status: str = "succeeded", output: bytes = b"", attempt: int = 1) -> RunRecord:
    return RunRecord(
        run_id=f"{job_id}-{scheduled}-{attempt}",
        job_id=job_id,
        job_name=f"job-{job_id}",
        scheduled_ms=scheduled,
        attempt=attempt,
        status=status,
        output=output,
    )


def _page_through(store: SqlStore, size: int, **filters: object) -> list[str]:
    seen: list[str] = []
    cursor: tuple[int, int, str] | None = None
    while True:
        page = store.list_runs(limit=size, older_than=cursor, with_output=False, **filters)  # type: ignore[arg-type]
        seen.extend(r.run_id for r in page)
        if len(page) < size:
            return seen
        cursor = (page[-1].scheduled_ms, page[-1].attempt, page[-1].run_id)


def test_paging_across_a_shared_millisecond_loses_nothing(store: SqlStore) -> None:
    # 7 jobs fire at the same instant (as every job on "0 * * * *" does), with
    # runs before and after it; pages of 3 end inside that millisecond.
    # Retries of one firing share it too: the newest attempt first (10 before 9).
    runs = [_run(job, 5_000) for job in range(1, 8)] + [_run(1, 4_000), _run(2, 6_000), _run(3, 3_000)]
    runs += [_run(8, 5_000, attempt=a) for a in (2, 9, 10)]
    store.write_runs(runs, [])
    expected = sorted(((r.scheduled_ms, r.attempt, r.run_id) for r in runs), reverse=True)
    assert expected[1][2] == "8-5000-10" and expected[2][2] == "8-5000-9"
    for size in (1, 2, 3, 4, 10):
        assert _page_through(store, size) == [rid for *_, rid in expected], size
    # The same with filters: one status, a time window (since inclusive, until exclusive).
    store.write_runs([], [("4-5000-1", {"status": "failed"}), ("6-5000-1", {"status": "failed"})])
    assert _page_through(store, 1, statuses=["failed"]) == ["6-5000-1", "4-5000-1"]
    window = _page_through(store, 2, since_ms=4_000, until_ms=6_000)
    assert window == [rid for at, _, rid in expected if 4_000 <= at < 6_000]


def test_summaries_leave_the_output_unread(store: SqlStore) -> None:
    store.write_runs([_run(1, 1_000, output=b"x" * 70_000)], [])
    assert store.list_runs(with_output=False)[0].output == b""
    assert len(store.list_runs()[0].output) == 70_000  # the monitor's callers still get it
    got = store.get_run("1-1000-1")
    assert got is not None and len(got.output) == 70_000


def test_sqlite_pages_by_index_without_a_sort(tmp_path: Path) -> None:
    """The store's own cursor queries are index range scans, not a sort of the whole history."""
    cfg = DatabaseConfig(driver="sqlite", path=str(tmp_path / "plan.db"))
    engine = make_engine(cfg)
    ensure_schema(engine, cfg)
    store = SqlStore(engine)
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM runs" in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    store.list_runs(limit=21, older_than=(5, 1, "x"), with_output=False)
    store.list_runs(job_id=1, limit=21, older_than=(5, 1, "x"), with_output=False)
    event.remove(engine, "before_cursor_execute", capture)
    assert len(seen) == 2
    with engine.connect() as conn:
        for statement, parameters in seen:
            raw = conn.connection.driver_connection
            assert raw is not None
            plan = " / ".join(str(row[-1]) for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters))
            assert "TEMP B-TREE" not in plan and "USING" in plan and "INDEX" in plan, plan
    store.close()
