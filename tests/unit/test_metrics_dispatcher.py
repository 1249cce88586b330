"""dispatcher/metrics.py: the values its hooks leave, and the hooks in
firing.py and recorder.py reaching it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest
from prometheus_client import generate_latest

from crontrio.common import status
from crontrio.common.claims.memory import MemoryClaims
from crontrio.common.model import TRIGGER_MANUAL, Job, RunRecord, firing_id
from crontrio.dispatcher.firing import FiringRunner
from crontrio.dispatcher.metrics import CLAIMED_ELSEWHERE, FIRED, DispatcherMetrics
from crontrio.dispatcher.recorder import RunRecorder
from crontrio.dispatcher.run_records import RunRecords


def value(metrics: DispatcherMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def record(run_status: str, attempt: int = 1, scheduled_ms: int = 10_000, trigger: str = "schedule") -> RunRecord:
    return RunRecord(
        run_id=f"1-{scheduled_ms}-{attempt}",
        job_id=1,
        job_name="j",
        scheduled_ms=scheduled_ms,
        attempt=attempt,
        status=run_status,
        trigger=trigger,
    )


def test_committed_batches_count_firing_outcomes_and_finished_runs() -> None:
    metrics = DispatcherMetrics()
    inserts = [
        record(status.PENDING),
        record(status.SKIPPED),
        record(status.MISSED),
        record(status.QUEUED),
        record(status.SKIPPED),
    ]
    # The last skip was recorded by another dispatcher already: not ours to count.
    created = [True, True, True, True, False]
    updates = [
        ("a", {"status": status.RUNNING, "started_ms": 1}),
        ("a", {"status": status.SUCCEEDED}),
        ("b", {"status": status.FAILED}),
        ("c", {"dispatcher": "d"}),
        ("d", {"status": status.LOST}),
        # A firing recorded after its misfire grace: not run, missed (dispatcher/misfire.py).
        ("e", {"status": status.MISSED, "error": "misfired"}),
    ]
    metrics.committed(inserts, created, updates)
    assert value(metrics, "crontrio_firings_total", outcome="skipped") == 1
    assert value(metrics, "crontrio_firings_total", outcome="missed") == 2
    assert value(metrics, "crontrio_firings_total", outcome="queued") == 1
    assert value(metrics, "crontrio_firings_total", outcome="fired") == 0  # counted where a firing runs
    finished = {s: value(metrics, "crontrio_runs_finished_total", status=s) for s in sorted(status.FINISHED)}
    assert finished == {"failed": 1, "killed": 0, "lost": 1, "missed": 2, "skipped": 1, "succeeded": 1, "timeout": 0}


def test_fire_lag_is_observed_for_first_scheduled_attempts_only() -> None:
    metrics = DispatcherMetrics()
    metrics.started(record(status.PENDING, scheduled_ms=10_000), 10_003)  # 3 ms late
    metrics.started(record(status.PENDING, scheduled_ms=10_000), 9_999)  # sent ahead, started a hair early: 0
    metrics.started(record(status.PENDING, attempt=2, scheduled_ms=10_000), 25_000)  # a retry: late on purpose
    metrics.started(record(status.PENDING, trigger=TRIGGER_MANUAL), 99_000)
    assert value(metrics, "crontrio_fire_lag_seconds_count") == 2
    assert value(metrics, "crontrio_fire_lag_seconds_sum") == pytest.approx(0.003)
    assert value(metrics, "crontrio_fire_lag_seconds_bucket", le="0.001") == 1
    assert value(metrics, "crontrio_fire_lag_seconds_bucket", le="0.005") == 2
    assert value(metrics, "crontrio_fire_lag_seconds_bucket", le="60.0") == 2


def test_scheduled_jobs_is_read_at_scrape_time() -> None:
    metrics = DispatcherMetrics()
    jobs = [1, 2]
    metrics.count_scheduled(lambda: len(jobs))
    assert value(metrics, "crontrio_scheduled_jobs") == 2
    jobs.append(3)
    assert value(metrics, "crontrio_scheduled_jobs") == 3


def test_every_outcome_is_exported_from_the_start() -> None:
    # A counter that appears only at its first increment breaks rate() and
    # increase() over it: all outcomes and statuses start at 0.
    text = generate_latest(DispatcherMetrics().registry).decode()
    for outcome in ("fired", "skipped", "missed", "claimed_elsewhere"):
        assert f'crontrio_firings_total{{outcome="{outcome}"}} 0.0' in text
    assert 'crontrio_runs_finished_total{status="failed"} 0.0' in text


@pytest.mark.asyncio
async def test_a_firing_claimed_by_another_dispatcher_counts_as_claimed_elsewhere() -> None:
    claims = MemoryClaims()
    job = Job(id=7, name="j", spec="* * * * * *", command="true")
    assert await claims.claim(firing_id(job.id, 5_000), "other", 60_000)
    runner = FiringRunner(RunRecords("me"), claims, cast(Any, None), cast(Any, None), cast(Any, None))
    await runner.fire(job, 5_000)
    assert value(runner.metrics, "crontrio_firings_total", outcome=CLAIMED_ELSEWHERE) == 1
    assert value(runner.metrics, "crontrio_firings_total", outcome=FIRED) == 0


class _Store:
    async def write_runs(self, inserts: Sequence[RunRecord], updates: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]:
        return [True] * len(inserts)


@pytest.mark.asyncio
async def test_the_recorder_reports_what_it_committed() -> None:
    recorder = RunRecorder(_Store())
    recorder.start()
    try:
        assert await recorder.insert(record(status.SKIPPED))
        await recorder.update("1-10000-1", status=status.TIMEOUT)
    finally:
        await recorder.close()
    assert value(recorder.metrics, "crontrio_firings_total", outcome="skipped") == 1
    assert value(recorder.metrics, "crontrio_runs_finished_total", status="timeout") == 1
