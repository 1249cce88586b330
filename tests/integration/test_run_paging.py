"""ListRuns' (scheduled_ms, run_id) cursor on every database backend: a page
boundary inside a millisecond shared by many runs loses and repeats nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from common.config import DatabaseConfig
from common.model import RunRecord
from common.store.engine import make_engine
from common.store.migrate import ensure_schema
from common.store.sql_store import SqlStore


@pytest.fixture(params=["sqlite", "mariadb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        cfg = DatabaseConfig(driver="sqlite", path=str(tmp_path / "store.db"))
    else:
        cfg = request.getfixturevalue("mariadb_config")
    engine = make_engine(cfg)
    ensure_schema(engine, cfg)
    s = SqlStore(engine)
    yield s
    s.close()


def _run(job_id: int, scheduled: int, status: str = "succeeded", output: bytes = b"") -> RunRecord:
    return RunRecord(
        run_id=f"{job_id}-{scheduled}-1",
        job_id=job_id,
        job_name=f"job-{job_id}",
        scheduled_ms=scheduled,
        attempt=1,
        status=status,
        output=output,
    )


def _page_through(store: SqlStore, size: int, **filters: object) -> list[str]:
    seen: list[str] = []
    cursor: tuple[int, str] | None = None
    while True:
        page = store.list_runs(limit=size, older_than=cursor, with_output=False, **filters)  # type: ignore[arg-type]
        seen.extend(r.run_id for r in page)
        if len(page) < size:
            return seen
        cursor = (page[-1].scheduled_ms, page[-1].run_id)


def test_paging_across_a_shared_millisecond_loses_nothing(store: SqlStore) -> None:
    # 7 jobs fire at the same instant (as every job on "0 * * * *" does), with
    # runs before and after it; pages of 3 end inside that millisecond.
    runs = [_run(job, 5_000) for job in range(1, 8)] + [_run(1, 4_000), _run(2, 6_000), _run(3, 3_000)]
    store.write_runs(runs, [])
    expected = sorted(((r.scheduled_ms, r.run_id) for r in runs), reverse=True)
    for size in (1, 2, 3, 4, 10):
        assert _page_through(store, size) == [rid for _, rid in expected], size
    # The same with filters: one status, a time window (since inclusive, until exclusive).
    store.write_runs([], [("4-5000-1", {"status": "failed"}), ("6-5000-1", {"status": "failed"})])
    assert _page_through(store, 1, statuses=["failed"]) == ["6-5000-1", "4-5000-1"]
    window = _page_through(store, 2, since_ms=4_000, until_ms=6_000)
    assert window == [rid for at, rid in expected if 4_000 <= at < 6_000]


def test_summaries_leave_the_output_unread(store: SqlStore) -> None:
    store.write_runs([_run(1, 1_000, output=b"x" * 70_000)], [])
    assert store.list_runs(with_output=False)[0].output == b""
    assert len(store.list_runs()[0].output) == 70_000  # the monitor's callers still get it
    got = store.get_run("1-1000-1")
    assert got is not None and len(got.output) == 70_000


def test_sqlite_pages_by_index_without_a_sort(tmp_path: Path) -> None:
    """The cursor query is an index range scan, not a sort of the whole history."""
    cfg = DatabaseConfig(driver="sqlite", path=str(tmp_path / "plan.db"))
    engine = make_engine(cfg)
    ensure_schema(engine, cfg)
    queries = {
        "all": "SELECT run_id FROM runs WHERE scheduled_ms <= 5 AND (scheduled_ms < 5 OR run_id < 'x') "
        "ORDER BY scheduled_ms DESC, run_id DESC LIMIT 21",
        "one job": "SELECT run_id FROM runs WHERE job_id = 1 AND scheduled_ms <= 5 AND (scheduled_ms < 5 OR run_id < 'x') "
        "ORDER BY scheduled_ms DESC, run_id DESC LIMIT 21",
    }
    with engine.connect() as conn:
        for name, sql in queries.items():
            plan = " / ".join(str(row[-1]) for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
            assert "TEMP B-TREE" not in plan and "USING" in plan and "INDEX" in plan, (name, plan)
    engine.dispose()
