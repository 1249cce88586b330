"""executor/metrics.py on a real RunTable and journal: runs running,
results by status, durations, unacknowledged results."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
import pytest_asyncio

from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.common.config import ExecutorConfig
from crontrio.executor.app import ExecutorApp
from crontrio.executor.http_task import HttpClients
from crontrio.executor.journal import Journal, StartedRun
from crontrio.executor.metrics import ExecutorMetrics
from crontrio.executor.runs import RunTable
from crontrio.protos import crontrio_pb2 as pb
from testing_support.counting_http import CountingServer
from testing_support.services import wait_until

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def runs(tmp_path: Path) -> AsyncIterator[RunTable]:
    journal = Journal(str(tmp_path / "journal.db"))
    await journal.open()
    registry = RunTable(ExecutorConfig(kill_grace_seconds=1.0), journal, cast(HttpClients, object()), host="h", address="a")
    yield registry
    registry.kill_all("test over")
    assert await registry.wait_idle(10)
    await journal.close()


def value(metrics: ExecutorMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def shell(command: str) -> pb.RunRequest:
    return pb.RunRequest(
        run_id=f"9-{uuid.uuid4().hex[:12]}-1", job_id=9, job_name="m", attempt=1, shell=pb.ShellTask(command=command)
    )


async def finish(runs: RunTable, request: pb.RunRequest) -> pb.RunFinished:
    async for event in await runs.run(request):
        if event.WhichOneof("event") == "finished":
            return event.finished
    raise AssertionError("no result")


async def test_runs_are_counted_by_status_with_their_durations(runs: RunTable) -> None:
    metrics = runs.metrics
    slow = shell("sleep 0.3")
    task = asyncio.create_task(finish(runs, slow))
    await wait_until(lambda: value(metrics, "crontrio_executor_runs_running") == 1, 10, "one run running")
    ok = await task
    assert ok.status == status.SUCCEEDED
    failed = await finish(runs, shell("exit 3"))
    assert failed.status == status.FAILED
    assert value(metrics, "crontrio_executor_runs_running") == 0
    assert value(metrics, "crontrio_executor_runs_total", status="succeeded") == 1
    assert value(metrics, "crontrio_executor_runs_total", status="failed") == 1
    assert value(metrics, "crontrio_executor_run_duration_seconds_count") == 2
    # The sleep's duration, as the result says (finished - started).
    took = (ok.finished_ms - ok.started_ms) / 1000
    assert took >= 0.3
    assert value(metrics, "crontrio_executor_run_duration_seconds_sum") >= took
    assert value(metrics, "crontrio_executor_run_duration_seconds_bucket", le="0.1") == 1  # only `exit 3`

    # Both results wait in the journal until a dispatcher acknowledges them.
    await metrics.refresh()
    assert value(metrics, "crontrio_executor_journal_unacked") == 2
    await runs.ack([ok.run_id])
    await metrics.refresh()
    assert value(metrics, "crontrio_executor_journal_unacked") == 1


async def test_runs_lost_with_a_previous_process_count_without_a_duration(runs: RunTable) -> None:
    started = StartedRun(
        run_id="9-gone-1",
        started_ms=1,
        host="h",
        executor="a",
        task="http",
        job_id=9,
        job_name="m",
        scheduled_ms=1,
        attempt=1,
    )
    await runs.journal.begin(started)
    assert await runs.recover() == 1
    assert value(runs.metrics, "crontrio_executor_runs_total", status="lost") == 1
    assert value(runs.metrics, "crontrio_executor_run_duration_seconds_count") == 0


async def test_connections_warmed_ahead_of_held_http_runs_are_counted(tmp_path: Path) -> None:
    cfg = ExecutorConfig(listen="127.0.0.1:0", journal=str(tmp_path / "journal.db"), metrics_listen="")
    app = ExecutorApp(cfg, cluster_secret="s" * 32)
    server = CountingServer()
    listening = await server.start()
    try:
        instant = now_ms() + 1_500
        for path in ("/a", "/b"):
            app.http.warmer.expect(pb.HttpTask(url=f"http://127.0.0.1:{server.port}{path}"), instant)
        await wait_until(lambda: app.http.warmer.idle, 10, "the warm-up to end")
        assert server.connections == 2
        assert value(app.runs.metrics, "crontrio_executor_http_connections_warmed_total", outcome="ready") == 2
        assert value(app.runs.metrics, "crontrio_executor_http_connections_warmed_total", outcome="failed") == 0
    finally:
        await app.close()
        listening.close()
