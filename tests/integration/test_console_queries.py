"""The queries behind the console's list pages, on SQLite and real MariaDB:
they return the right runs and jobs, and each one is an index range scan
(EXPLAIN), never a walk of the whole history or a sort of it.

At 1,000,000 runs a walk of the whole history took seconds (bench/RESULTS.md,
console_pages); the plans checked here are what keeps each page at one page
of rows read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from crontrio.common.config import DatabaseConfig
from crontrio.common.model import Job, RunRecord
from crontrio.common.store.engine import make_engine
from crontrio.common.store.migrate import ensure_schema
from crontrio.common.store.rows import job_values
from crontrio.common.store.sql_store import SqlStore

STATUSES = ("succeeded", "failed", "timeout", "killed", "lost", "skipped", "running", "pending")


def _runs(jobs: int, per_job: int) -> list[RunRecord]:
    """Mostly succeeded, the rest spread over the other statuses; a few running."""
    out = []
    for job in range(1, jobs + 1):
        for k in range(per_job):
            n = job * per_job + k
            state = "succeeded" if n % 10 else STATUSES[1 + (n // 10) % 5]
            if k == per_job - 1 and job % 4 == 0:
                state = "running" if job % 8 == 0 else "pending"
            at = 1_000_000 + k * 60_000 + (job % 5) * 7  # interleaved across jobs, many sharing a millisecond
            run_id = f"{job}-{at}-1"
            out.append(RunRecord(run_id=run_id, job_id=job, job_name=f"job-{job}", scheduled_ms=at, attempt=1, status=state))
    return out


def _key(r: RunRecord) -> tuple[int, int, str]:
    return (r.scheduled_ms, r.attempt, r.run_id)


def _page_through(store: SqlStore, size: int, **filters: Any) -> list[str]:
    seen: list[str] = []
    cursor: tuple[int, int, str] | None = None
    while True:
        page = store.list_runs(limit=size, older_than=cursor, with_output=False, **filters)
        seen.extend(r.run_id for r in page)
        if len(page) < size:
            return seen
        cursor = _key(page[-1])


def test_several_statuses_page_newest_first_losing_nothing(store: SqlStore) -> None:
    runs = _runs(jobs=12, per_job=30)
    store.write_runs(runs, [])
    for wanted in (["failed", "timeout"], ["pending", "running"], ["killed", "lost", "failed", "skipped"]):
        expected = [r.run_id for r in sorted((r for r in runs if r.status in wanted), key=_key, reverse=True)]
        assert expected, wanted
        for size in (1, 3, 7, 500):
            assert _page_through(store, size, statuses=wanted) == expected, (wanted, size)
    # With a job as well, and a time window.
    wanted = ["failed", "succeeded"]
    expected = [
        r.run_id
        for r in sorted(runs, key=_key, reverse=True)
        if r.job_name == "job-3" and r.status in wanted and 1_300_000 <= r.scheduled_ms < 2_000_000
    ]
    got = _page_through(store, 4, statuses=wanted, job_name="job-3", since_ms=1_300_000, until_ms=2_000_000)
    assert got == expected and expected


def test_name_search_ignores_case_on_both_databases(store: SqlStore) -> None:
    for name in ("Payments.sync-1", "payments.sync-2", "payments_x", "paymentsXsync", "orders.sync"):
        store.create_job(Job(name=name, spec="0 3 * * *", command="true"))
    assert [j.name for j in store.list_jobs(name_prefix="PAYMENTS.s")] == ["Payments.sync-1", "payments.sync-2"]
    assert [j.name for j in store.list_jobs(name_prefix="payments_")] == ["payments_x"]  # _ is no wildcard
    assert store.list_jobs(name_prefix="zz") == []


def _statements(engine: Engine, calls: list[Any]) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        for call in calls:
            call()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return seen


def _plans(store: SqlStore, statements: list[tuple[str, Any]]) -> list[str]:
    """One line per statement: the plan as the database explains it."""
    engine = store.engine
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        out = []
        for statement, parameters in statements:
            if engine.dialect.name == "sqlite":
                cur.execute("EXPLAIN QUERY PLAN " + statement, parameters)
                out.append(" / ".join(str(row[-1]) for row in cur.fetchall()))
            else:
                cur.execute("EXPLAIN " + statement, parameters)
                names = [d[0] for d in cur.description]
                rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
                out.append(" / ".join(f"type={r['type']} key={r['key']} extra={r['Extra']}" for r in rows))
        cur.close()
        return out
    finally:
        raw.close()


def _analyze(store: SqlStore) -> None:
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("ANALYZE" if store.engine.dialect.name == "sqlite" else "ANALYZE TABLE runs, jobs")
        if store.engine.dialect.name != "sqlite":
            cur.fetchall()
        cur.close()
        raw.commit()
    finally:
        raw.close()


def test_list_pages_are_index_range_scans(store: SqlStore) -> None:
    store.write_runs(_runs(jobs=200, per_job=25), [])
    for i in range(300):
        store.create_job(Job(name=f"team{i % 10}.job-{i}", spec="0 3 * * *", command="true"))
    _analyze(store)
    cursor = (1_000_000 + 12 * 60_000, 1, "x")
    runs_calls = [
        lambda: store.list_runs(statuses=["running"], limit=51, with_output=False),
        lambda: store.list_runs(statuses=["pending", "running"], limit=21, with_output=False),
        lambda: store.list_runs(statuses=["failed"], limit=51, older_than=cursor, with_output=False),
        lambda: store.list_runs(job_name="job-17", limit=51, with_output=False),
        lambda: store.list_runs(job_name="job-17", limit=51, older_than=cursor, with_output=False),
    ]
    statements = _statements(store.engine, runs_calls)
    assert len(statements) == 6  # the two statuses are two range scans, merged
    sqlite = store.engine.dialect.name == "sqlite"
    for (statement, _), plan in zip(statements, _plans(store, statements), strict=True):
        index = "ix_runs_name_scheduled_id" if "job_name = " in statement else "ix_runs_status_scheduled_id"
        assert index in plan, plan
        if sqlite:
            assert "TEMP B-TREE" not in plan and "SEARCH" in plan, plan
        else:
            assert "filesort" not in plan and "type=ALL" not in plan and "type=index " not in plan, plan

    *_, page = _statements(store.engine, [lambda: store.list_jobs(name_prefix="team3.", limit=51)])  # after SQLite's count
    [plan] = _plans(store, [page])
    if sqlite:
        assert "ix_jobs_name_nocase" in plan and "SCAN jobs" not in plan, plan
    else:
        assert "type=range" in plan and "key=uq_jobs_name" in plan, plan


def test_run_counts_by_status_are_read_from_the_index(store: SqlStore) -> None:
    runs = _runs(jobs=200, per_job=25)
    store.write_runs(runs, [])
    _analyze(store)
    since, until = 1_000_000 + 5 * 60_000, 1_000_000 + 20 * 60_000

    def expected(job: str = "") -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in runs:
            if since <= r.scheduled_ms < until and job in ("", r.job_name):
                counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    assert store.count_runs(since_ms=since, until_ms=until) == expected()
    assert store.count_runs(since_ms=since, until_ms=until, job_name="job-8") == expected("job-8")
    assert sum(store.count_runs(since_ms=since).values()) == sum(1 for r in runs if r.scheduled_ms >= since)

    statements = _statements(store.engine, [lambda: store.count_runs(since_ms=since, until_ms=until)])
    assert len(statements) >= 5  # one per status
    for plan in _plans(store, statements):
        if store.engine.dialect.name == "sqlite":
            assert "COVERING INDEX ix_runs_status_scheduled_id" in plan, plan
        else:
            extra = [part.strip() for part in plan.split("extra=")[1].split(";")]
            assert "key=ix_runs_status_scheduled_id" in plan and "type=range" in plan and "Using index" in extra, plan


def test_sqlite_name_search_reads_the_name_index_at_100000_jobs(tmp_path: Path) -> None:
    """With 100,000 jobs and fresh statistics, SQLite's planner walked every
    job by id to find that no name matched; a search for few names reads
    them from ix_jobs_name_nocase instead, one for many still walks by id."""
    cfg = DatabaseConfig(driver="sqlite", path=str(tmp_path / "jobs.db"))
    engine = make_engine(cfg)
    ensure_schema(engine, cfg)
    template = {**job_values(Job(name="x", spec="0 3 * * *", command="true")), "created_ms": 1, "updated_ms": 1}
    columns = [c for c in template if c != "name"]
    raw = engine.raw_connection()
    try:
        raw.execute(
            f"INSERT INTO jobs (name, {', '.join(columns)}) "
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
            f"SELECT printf('team%d.job-%06d', i % 20, i), {', '.join('?' for _ in columns)} FROM n",
            [template[c] for c in columns],
        )
        raw.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    store = SqlStore(engine)
    calls = [
        lambda: store.list_jobs(name_prefix="zz", limit=51),
        lambda: store.list_jobs(name_prefix="TEAM3.job-0012", limit=51, after_id=1250),
        lambda: store.list_jobs(name_prefix="team3.", limit=51, after_id=500),
    ]
    assert calls[0]() == []
    assert [j.id for j in calls[1]()] == [1263, 1283]  # case ignored, after_id honoured, by id
    assert [j.id for j in calls[2]()] == list(range(503, 503 + 51 * 20, 20))
    statements = [s for s in _statements(engine, calls) if "FROM jobs" in s[0] and "count" not in s[0].lower()]
    few, few_again, many = _plans(store, statements)
    assert "ix_jobs_name_nocase" in few and "SCAN" not in few, few
    assert "ix_jobs_name_nocase" in few_again, few_again
    assert "PRIMARY KEY" in many and "TEMP B-TREE" not in many, many  # 5,000 match: by id, no sort
    store.close()


def test_run_counts_per_bucket_on_both_databases(store: SqlStore) -> None:
    runs = _runs(jobs=60, per_job=25)
    store.write_runs(runs, [])
    since, until, bucket = 1_000_000 + 3 * 60_000 + 5, 1_000_000 + 20 * 60_000, 5 * 60_000

    def expected(job: str = "") -> dict[int, dict[str, int]]:
        out: dict[int, dict[str, int]] = {}
        for r in runs:
            if since <= r.scheduled_ms < until and job in ("", r.job_name):
                start = since + (r.scheduled_ms - since) // bucket * bucket
                out.setdefault(start, {})[r.status] = out.get(start, {}).get(r.status, 0) + 1
        return out

    got = store.count_runs_by_bucket(since_ms=since, until_ms=until, bucket_ms=bucket)
    assert got == expected() and list(got) == sorted(got) and len(got) == 4
    assert store.count_runs_by_bucket(since_ms=since, until_ms=until, bucket_ms=bucket, job_name="job-8") == expected("job-8")
    statements = _statements(store.engine, [lambda: store.count_runs_by_bucket(since_ms=since, until_ms=until, bucket_ms=bucket)])
    for plan in _plans(store, statements):
        if store.engine.dialect.name == "sqlite":
            assert "COVERING INDEX ix_runs_status_scheduled_id" in plan, plan
        else:
            extra = [part.strip() for part in plan.split("extra=")[1].split(";")]
            assert "key=ix_runs_status_scheduled_id" in plan and "type=range" in plan and "Using index" in extra, plan
