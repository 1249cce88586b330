"""monitor/metrics.py on SQLite and MariaDB: the per-job values after runs,
pauses and deletes, a fixed number of queries however many jobs, the
refresh interval, and the switch for large fleets."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event

from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.common.model import Job, RunRecord
from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.sql_store import SqlStore
from crontrio.monitor.metrics import JobSnapshot, JobStats, MonitorMetrics, _JobState, render_per_job


@pytest.fixture
async def db(store: SqlStore) -> AsyncIterator[AsyncStore]:
    async_store = AsyncStore(store)
    yield async_store
    await async_store.close()


def job(store: SqlStore, name: str, spec: str = "0 * * * * *") -> Job:
    return store.create_job(Job(name=name, spec=spec, command="true"))


def run(j: Job, scheduled_ms: int, run_status: str, attempt: int = 1, finished_ms: int = 0) -> RunRecord:
    return RunRecord(
        run_id=f"{j.id}-{scheduled_ms}-{attempt}",
        job_id=j.id,
        job_name=j.name,
        scheduled_ms=scheduled_ms,
        attempt=attempt,
        status=run_status,
        finished_ms=finished_ms or scheduled_ms + 500,
    )


def metrics_of(store: SqlStore | None, db: AsyncStore | None, refresh_seconds: float = 0.0, **cluster: Any) -> MonitorMetrics:
    return MonitorMetrics(
        executors_up=cluster.get("executors_up", lambda: 0),
        dispatchers_up=cluster.get("dispatchers_up", lambda: 0),
        firings_missed=cluster.get("firings_missed", lambda: 0),
        stats=JobStats(store) if store is not None else None,
        store=db,
        refresh_seconds=refresh_seconds,
    )


class Scrape:
    """One /metrics body, parsed as Prometheus would."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))


async def scrape(metrics: MonitorMetrics) -> Scrape:
    return Scrape((await metrics.exposition()).decode())


async def test_per_job_values_follow_runs_pauses_and_deletes(store: SqlStore, db: AsyncStore) -> None:
    t = now_ms() - 3_600_000
    steady, flaky, _fresh, paused = (job(store, n) for n in ("steady", "flaky", "fresh", "paused"))
    store.write_runs(
        [
            run(steady, t, status.SUCCEEDED, finished_ms=t + 700),
            run(steady, t + 60_000, status.SUCCEEDED, finished_ms=t + 60_900),
            # flaky: succeeded once, then its latest firing failed twice (a retry)...
            run(flaky, t, status.SUCCEEDED, finished_ms=t + 100),
            run(flaky, t + 60_000, status.FAILED, attempt=1),
            run(flaky, t + 60_000, status.TIMEOUT, attempt=2),
            # ...and a firing still running does not count as its latest finished run.
            run(flaky, t + 120_000, status.RUNNING, finished_ms=-1),
            run(paused, t, status.LOST),
        ],
        [],
    )
    store.set_enabled(paused.id, False)
    metrics = metrics_of(store, db)
    got = await scrape(metrics)

    assert got.value("crontrio_job_last_success_timestamp_seconds", job="steady") == (t + 60_900) / 1000
    assert got.value("crontrio_job_last_success_timestamp_seconds", job="flaky") == (t + 100) / 1000
    assert got.value("crontrio_job_last_success_timestamp_seconds", job="fresh") == 0  # never
    assert got.value("crontrio_job_last_status", job="steady", status="succeeded") == 1
    assert got.value("crontrio_job_last_status", job="flaky", status="timeout") == 1
    assert got.value("crontrio_job_last_status", job="flaky", status="failed") is None  # one series a job
    assert got.value("crontrio_job_last_status", job="paused", status="lost") == 1
    assert 'crontrio_job_last_status{job="fresh"' not in got.text  # no finished run yet
    # "0 * * * * *": the next whole minute; a paused job has none.
    next_fire = got.value("crontrio_job_next_fire_timestamp_seconds", job="steady")
    assert next_fire is not None and next_fire % 60 == 0 and 0 < next_fire - time.time() <= 60
    assert got.value("crontrio_job_next_fire_timestamp_seconds", job="paused") == 0

    # A deleted job's series go with it; a resumed one gets its next fire time.
    store.delete_job(flaky.id)
    store.set_enabled(paused.id, True)
    got = await scrape(metrics)
    assert 'job="flaky"' not in got.text
    resumed = got.value("crontrio_job_next_fire_timestamp_seconds", job="paused")
    assert resumed is not None and resumed > time.time()


async def test_a_refresh_costs_the_same_queries_for_3_jobs_or_300(store: SqlStore, db: AsyncStore) -> None:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        per_size = []
        for n in (3, 300):
            for i in range(n - len(store.list_jobs())):
                j = job(store, f"j{n}-{i}")
                store.write_runs([run(j, now_ms() - 60_000, status.SUCCEEDED)], [])
            metrics = metrics_of(store, db)
            await metrics.exposition()  # the first read also parses each job's schedule once
            statements.clear()
            got = await scrape(metrics)  # a scrape later: nothing changed
            per_size.append(len(statements))
            assert len([k for k in got.samples if k[0] == "crontrio_job_last_success_timestamp_seconds"]) == n
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert per_size[0] == per_size[1] <= 4, per_size


async def test_scrapes_within_the_refresh_interval_do_not_query(store: SqlStore, db: AsyncStore) -> None:
    j = job(store, "cached")
    metrics = metrics_of(store, db, refresh_seconds=3600)
    await metrics.exposition()
    store.write_runs([run(j, now_ms() - 1000, status.SUCCEEDED)], [])
    got = await scrape(metrics)
    assert got.value("crontrio_job_last_success_timestamp_seconds", job="cached") == 0  # the cached read


async def test_cluster_values_and_no_per_job_series_when_turned_off(store: SqlStore, db: AsyncStore) -> None:
    job(store, "some-job")
    up = {"executors": 2}
    metrics = metrics_of(None, db, executors_up=lambda: up["executors"], dispatchers_up=lambda: 1, firings_missed=lambda: 4)
    got = await scrape(metrics)
    assert got.value("crontrio_executors_up") == 2
    assert got.value("crontrio_dispatchers_up") == 1
    assert got.value("crontrio_firings_total", outcome="missed") == 4
    assert "crontrio_job_" not in got.text
    up["executors"] = 1
    assert (await scrape(metrics)).value("crontrio_executors_up") == 1  # read at each scrape


def test_job_names_are_escaped_in_the_text_format() -> None:
    # Plain-SQL rows are not validated: a name may hold anything.
    name = 'odd "name" \\ with\nnewline'
    snapshot = JobSnapshot({1: _JobState(name, (1, False, "", "UTC"), False)}, {1: 1_500}, {1: status.FAILED})
    got = Scrape(render_per_job(snapshot).decode())
    assert got.value("crontrio_job_last_success_timestamp_seconds", job=name) == 1.5
    assert got.value("crontrio_job_next_fire_timestamp_seconds", job=name) == 0
    assert got.value("crontrio_job_last_status", job=name, status="failed") == 1
