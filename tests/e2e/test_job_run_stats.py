"""ListJobs with_run_stats and order_by=name through a real dispatcher: the
latest run and the success rate over the recent runs of each job of a page,
from one indexed query; paging by name loses nothing."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from sqlalchemy.dialects import sqlite

from crontrio.common.store import run_stats
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc
from testing_support.trio import Trio, make_trio, stop_trio

BASE_MS = 1_780_000_000_000
RUN_COLUMNS = (
    "run_id, job_id, job_name, scheduled_ms, attempt, status, dispatcher, executor, host, pid, exit_code, "
    "started_ms, finished_ms, output, output_truncated, error, created_ms, updated_ms, shard, shard_total, trigger"
)


@pytest.fixture(scope="module")
def stats_trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    t = make_trio(tmp_path_factory.mktemp("stats"))
    try:
        t.start("dispatcher")
        for name in ("zeta", "alpha", "mid", "Beta", "quiet"):
            done = t.cronctl("job", "add", "--name", name, "--spec", "@yearly", "--command", "true")
            assert done.returncode == 0, done.stderr
        yield t
    finally:
        stop_trio(t)


def _add_run(t: Trio, job: str, i: int, state: str, attempt: int = 1, started: int = 1, finished: int = 2) -> None:
    job_id = int(str(t.sql("SELECT id FROM jobs WHERE name = ?", (job,))[0][0]))
    at = BASE_MS + i * 1000
    t.sql(
        f"INSERT INTO runs ({RUN_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, 'd', 'e', 'h', 0, 0, ?, ?, x'', 0, '', 0, 0, 0, 0, 'schedule')",
        (
            f"{job_id}-{at}-{attempt}",
            job_id,
            job,
            at,
            attempt,
            state,
            at + started if started else 0,
            at + finished if finished else 0,
        ),
    )


def _list(t: Trio, **kwargs: object) -> pb.ListJobsReply:
    with grpc.insecure_channel(t.dispatcher) as channel:
        return pb_grpc.AdminStub(channel).ListJobs(pb.ListJobsRequest(**kwargs))  # type: ignore[arg-type]


def test_latest_run_and_success_rate_over_the_recent_runs(stats_trio: Trio) -> None:
    t = stats_trio
    # alpha: 30 old failures, then 20 runs of which 15 succeeded, 4 failed, 1 skipped
    # (not an outcome); only the newest 20 count, so the old failures do not.
    for i in range(30):
        _add_run(t, "alpha", i, "failed")
    for i in range(30, 50):
        _add_run(t, "alpha", i, "skipped" if i == 35 else "failed" if i % 5 == 0 else "succeeded")
    # ...and its latest firing failed once, then its retry (attempt 2) is running.
    _add_run(t, "alpha", 60, "failed", attempt=1, started=5, finished=1500)
    _add_run(t, "alpha", 60, "running", attempt=2, started=2000, finished=0)
    _add_run(t, "mid", 1, "succeeded", started=100, finished=4100)
    reply = _list(t, with_run_stats=True)
    by_name = {j.name: j for j in reply.jobs}
    alpha = by_name["alpha"].run_stats
    alpha_id = by_name["alpha"].id
    assert alpha.last_run_id == f"{alpha_id}-{BASE_MS + 60_000}-2" and alpha.last_status == "running"
    assert alpha.last_started_ms == BASE_MS + 62_000 and alpha.last_finished_ms == 0
    # newest 20: the running retry (no outcome), its failed first try, runs 49..32 minus skipped 35
    recent = ["failed"] + ["skipped" if i == 35 else "failed" if i % 5 == 0 else "succeeded" for i in range(49, 31, -1)]
    outcomes = [s for s in recent if s != "skipped"]
    assert (alpha.recent_finished, alpha.recent_succeeded) == (len(outcomes), outcomes.count("succeeded"))
    mid = by_name["mid"].run_stats
    assert mid.last_status == "succeeded" and mid.last_finished_ms - mid.last_started_ms == 4000
    assert (mid.recent_finished, mid.recent_succeeded) == (1, 1)
    assert not by_name["quiet"].HasField("run_stats")
    # Not asked for: not read.
    assert not any(j.HasField("run_stats") for j in _list(t).jobs)


def test_the_stats_query_reads_the_job_index_only(stats_trio: Trio) -> None:
    """One statement for the page, each branch an index range of one job's
    newest runs: no scan of the runs table at any size."""
    statement = run_stats.union_all(*(run_stats._branch(job_id, run_stats.RECENT) for job_id in (1, 2, 3)))
    text = str(statement.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    plan = " | ".join(str(row[-1]) for row in stats_trio.sql("EXPLAIN QUERY PLAN " + text))
    assert "SCAN runs" not in plan and plan.count("SEARCH runs USING") == 3 and "ix_runs_job_scheduled" in plan, plan


def test_order_by_name_pages_through_every_job(stats_trio: Trio) -> None:
    names: list[str] = []
    token = ""
    while True:
        reply = _list(stats_trio, order_by="name", limit=2, page_token=token)
        names += [j.name for j in reply.jobs]
        token = reply.next_page_token
        if not token:
            break
    assert names == sorted(names) and len(names) == 5
    with pytest.raises(grpc.RpcError) as err:  # a token of the id order is refused, not misread
        _list(stats_trio, order_by="name", page_token=_list(stats_trio, limit=2).next_page_token)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in (err.value.details() or "")
    with pytest.raises(grpc.RpcError) as err:
        _list(stats_trio, order_by="size")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and (err.value.details() or "").startswith("order_by:")


def test_jobs_by_names_in_one_call(stats_trio: Trio) -> None:
    reply = _list(stats_trio, names=["zeta", "nobody", "alpha"], with_run_stats=True)
    assert [j.name for j in reply.jobs] == ["alpha", "zeta"] and not reply.next_page_token
    with pytest.raises(grpc.RpcError) as err:
        _list(stats_trio, names=["a", "b", "c"], limit=2)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and (err.value.details() or "").startswith("names:")
