"""common/store/run_stats.py and list_jobs by name on SQLite and a real
MariaDB: the newest runs of each job of a page, in one statement."""

from __future__ import annotations

from crontrio.common.model import Job, RunRecord
from crontrio.common.store.run_stats import job_run_stats
from crontrio.common.store.sql_store import SqlStore

BASE_MS = 1_780_000_000_000


def _runs(job: Job, states: list[str]) -> list[RunRecord]:
    return [
        RunRecord(f"{job.id}-{BASE_MS + i * 1000}-1", job.id, job.name, BASE_MS + i * 1000, 1, s, started_ms=1, finished_ms=2)
        for i, s in enumerate(states)
    ]


def test_stats_of_a_page_of_jobs(store: SqlStore) -> None:
    many, few, none = (store.create_job(Job(name=n, spec="* * * * *", command="true")) for n in ("many", "few", "none"))
    # 250 runs: only the newest 20 count (10 succeeded, 10 failed); the oldest 230 all failed.
    store.write_runs(_runs(many, ["failed"] * 230 + ["succeeded", "failed"] * 10), [])
    store.write_runs(_runs(few, ["succeeded", "skipped", "running"]), [])
    stats = job_run_stats(store.engine, [many.id, few.id, none.id])
    assert (stats[many.id].recent_finished, stats[many.id].recent_succeeded) == (20, 10)
    assert stats[many.id].last_status == "failed" and stats[many.id].last_scheduled_ms == BASE_MS + 249_000
    assert (stats[few.id].last_status, stats[few.id].recent_finished, stats[few.id].recent_succeeded) == ("running", 1, 1)
    assert none.id not in stats
    # More jobs than one statement's branches: chunked, nothing lost.
    assert set(job_run_stats(store.engine, [few.id, *range(10_000, 10_450)])) == {few.id}


def test_list_jobs_by_name_after_a_name(store: SqlStore) -> None:
    for name in ("m", "c", "x", "a"):
        store.create_job(Job(name=name, spec="* * * * *", command="true"))
    assert [j.name for j in store.list_jobs(after_name="")] == ["a", "c", "m", "x"]
    assert [j.name for j in store.list_jobs(after_name="c", limit=1)] == ["m"]
