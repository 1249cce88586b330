"""Retention pruning (common/store/retention.py) on SQLite and a real MariaDB.

A large run history (60,000 runs over 11 jobs and 90 days, some unfinished,
some retries tied on their scheduled time) and an audit log are inserted in
bulk with SQL; one prune must leave exactly what the rules keep, in
transactions of at most `batch_rows` deleted rows each, counted by
SQLAlchemy event listeners on the engine, not by the code under test.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select

from crontrio.common import status
from crontrio.common.config import DatabaseConfig
from crontrio.common.store.engine import make_engine
from crontrio.common.store.migrate import ensure_schema
from crontrio.common.store.retention import DAY_MS, RetentionPolicy, prune, prune_steps
from crontrio.common.store.schema import audit_log, runs

NOW_MS = 1_800_000_000_000
# Runs per job id: big ones, ones around the per-job minimum, a tiny one.
JOB_RUNS = {1: 20_000, 2: 15_000, 3: 10_000, 4: 6_000, 5: 4_000, 6: 3_000, 7: 1_500, 8: 300, 9: 101, 10: 99, 11: 3}
UNFINISHED = (status.PENDING, status.RUNNING, status.QUEUED)
POLICY = RetentionPolicy(keep_runs_days=30, keep_runs_per_job=100, keep_audit_days=180, batch_rows=700)


@pytest.fixture(params=["sqlite", "mariadb"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        cfg = DatabaseConfig(driver="sqlite", path=str(tmp_path / "store.db"))
    else:
        cfg = request.getfixturevalue("mariadb_config")
    eng = make_engine(cfg)
    ensure_schema(eng, cfg)
    yield eng
    eng.dispose()


def _run_row(run_id: str, job_id: int, scheduled_ms: int, attempt: int, state: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "job_id": job_id,
        "job_name": f"job{job_id}",
        "scheduled_ms": scheduled_ms,
        "attempt": attempt,
        "status": state,
        "dispatcher": "d1",
        "executor": "127.0.0.1:5921",
        "host": "h",
        "pid": 0,
        "exit_code": 0,
        "started_ms": scheduled_ms,
        "finished_ms": scheduled_ms + 1000 if state not in UNFINISHED else 0,
        "output": b"x" * 200,
        "output_truncated": False,
        "error": "",
        "created_ms": scheduled_ms,
        "updated_ms": scheduled_ms,
        "shard": 0,
        "shard_total": 0,
        "trigger": "",
    }


def make_history(seed: int = 14) -> list[dict[str, Any]]:
    """Runs spread evenly over the last 90 days per job; every 50th firing
    retried (attempt 2, same scheduled time); every 997th unfinished."""
    rnd = random.Random(seed)
    rows: list[dict[str, Any]] = []
    finished = sorted(status.FINISHED)
    n = 0
    for job_id, count in JOB_RUNS.items():
        step = 90 * DAY_MS // count
        made = firing = 0
        while made < count:
            scheduled = NOW_MS - 90 * DAY_MS + firing * step + 1
            for attempt in (1, 2) if firing % 50 == 7 else (1,):
                n += 1
                made += 1
                state = UNFINISHED[n % 3] if n % 997 == 0 else rnd.choice(finished)
                rows.append(_run_row(f"{job_id}-{scheduled}-{attempt}", job_id, scheduled, attempt, state))
            firing += 1
    return rows


def make_audit(count: int = 5_000) -> list[dict[str, Any]]:
    step = 365 * DAY_MS // count
    return [
        {
            "at_ms": NOW_MS - 365 * DAY_MS + i * step,
            "actor": "alice",
            "action": "job.update",
            "target": f"job{i % 7}",
            "before_json": "{}",
            "after_json": "{}",
        }
        for i in range(count)
    ]


def bulk_insert(engine: Engine, history: list[dict[str, Any]], audit: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        for i in range(0, len(history), 5_000):
            conn.execute(insert(runs), history[i : i + 5_000])
        conn.execute(insert(audit_log), audit)


def expected_runs(history: list[dict[str, Any]], policy: RetentionPolicy) -> set[str]:
    """The rules, spelled directly: a run stays if it is not finished, or
    young enough, or scheduled no earlier than its job's N-th newest run."""
    age_cutoff = NOW_MS - int(policy.keep_runs_days * DAY_MS)
    by_job: dict[int, list[int]] = {}
    for row in history:
        by_job.setdefault(row["job_id"], []).append(row["scheduled_ms"])
    nth = {
        job: sorted(times, reverse=True)[policy.keep_runs_per_job - 1] if len(times) >= policy.keep_runs_per_job else -1
        for job, times in by_job.items()
    }
    return {
        row["run_id"]
        for row in history
        if row["status"] not in status.FINISHED or row["scheduled_ms"] >= age_cutoff or row["scheduled_ms"] >= nth[row["job_id"]]
    }


class DeleteTransactions:
    """Rows deleted per committed transaction, seen from the engine's events."""

    def __init__(self, engine: Engine) -> None:
        self.committed: list[int] = []
        self.statements = 0
        self._open = 0
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "commit", self._commit)

    def _begin(self, conn: Any) -> None:
        self._open = 0

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            self.statements += 1
            self._open += cursor.rowcount

    def _commit(self, conn: Any) -> None:
        if self._open:
            self.committed.append(self._open)
        self._open = 0


def _rows(engine: Engine, column: Any) -> set[Any]:
    with engine.connect() as conn:
        return set(conn.execute(select(column)).scalars())


def test_prune_keeps_exactly_what_the_rules_say_in_bounded_transactions(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    history, audit = make_history(), make_audit()
    assert len(history) >= 50_000
    bulk_insert(engine, history, audit)
    watch = DeleteTransactions(engine)

    report = prune(engine, POLICY, NOW_MS)

    survivors = _rows(engine, runs.c.run_id)
    want = expected_runs(history, POLICY)
    assert survivors == want
    # The rules one by one, so a failure says which one broke.
    deleted = {r["run_id"]: r for r in history if r["run_id"] not in survivors}
    assert len(deleted) > 30_000  # the data set really exercises pruning
    assert all(r["status"] in status.FINISHED for r in deleted.values())
    assert all(r["scheduled_ms"] < NOW_MS - 30 * DAY_MS for r in deleted.values())
    unfinished = [r for r in history if r["status"] in UNFINISHED]
    assert unfinished and all(r["run_id"] in survivors for r in unfinished)
    per_job = {job: sum(1 for r in history if r["job_id"] == job and r["run_id"] in survivors) for job in JOB_RUNS}
    assert all(per_job[job] >= min(POLICY.keep_runs_per_job, count) for job, count in JOB_RUNS.items())
    assert per_job[11] == 3 and per_job[10] == 99  # below the minimum: untouched, however old
    audit_left = _rows(engine, audit_log.c.at_ms)
    assert audit_left == {a["at_ms"] for a in audit if a["at_ms"] >= NOW_MS - 180 * DAY_MS}

    # Bounded transactions, seen by the engine: every one deleted at most
    # batch_rows, together exactly what went.
    assert watch.committed and max(watch.committed) <= POLICY.batch_rows
    assert sum(watch.committed) == len(deleted) + len(audit) - len(audit_left)
    assert len(watch.committed) >= len(deleted) // POLICY.batch_rows
    assert report.runs == len(deleted) and report.largest_transaction <= POLICY.batch_rows
    with capsys.disabled():
        print(
            f"\n[retention {engine.dialect.name}] pruned {report.runs} runs + {report.audit} audit entries "
            f"of {len(history)} in {report.seconds:.2f}s = {report.rows_per_second:,.0f} rows/s, "
            f"{report.transactions} transactions of <= {POLICY.batch_rows} rows"
        )

    # A second pass finds nothing more.
    again = prune(engine, POLICY, NOW_MS)
    assert again.deleted == 0 and _rows(engine, runs.c.run_id) == want


def test_prune_yields_between_transactions_and_zero_days_keep_forever(engine: Engine) -> None:
    history = make_history()[:6_000]  # job 1 only: 6,000 runs over its first days
    bulk_insert(engine, history, make_audit(300))
    forever = RetentionPolicy(keep_runs_days=0, keep_runs_per_job=1, keep_audit_days=0, batch_rows=100)
    assert list(prune_steps(engine, forever, NOW_MS)) == []
    assert len(_rows(engine, runs.c.run_id)) == 6_000

    small = RetentionPolicy(keep_runs_days=1, keep_runs_per_job=1, keep_audit_days=0, batch_rows=250)
    watch = DeleteTransactions(engine)
    steps = prune_steps(engine, small, NOW_MS)
    first = next(steps)
    # After one step exactly one transaction is committed and the rest waits.
    assert first.table == "runs" and first.rows == 250 and watch.committed == [250]
    assert len(_rows(engine, runs.c.run_id)) == 6_000 - 250
    rest = list(steps)
    assert all(s.rows <= 250 for s in rest) and max(watch.committed) <= 250
    left = {r["run_id"] for r in history} & _rows(engine, runs.c.run_id)
    newest = max(r["scheduled_ms"] for r in history)
    assert {r["run_id"] for r in history if r["status"] in UNFINISHED or r["scheduled_ms"] == newest} == left
    assert len(_rows(engine, audit_log.c.id)) == 300  # keep_audit_days = 0 keeps the audit log
