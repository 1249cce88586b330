"""ListRuns and ListJobs at scale through a real dispatcher and cronctl:
summaries, default and maximum pages, page tokens, and cronctl's filters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from crontrio.cronctl.timefmt import iso_utc
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc
from testing_support.trio import Trio, make_trio, stop_trio

BASE_MS = 1_780_000_000_000  # 2026-05-28, whole second: like scheduled firings
BIG_RUNS, SMALL_RUNS = 300, 1_200
OUTPUT_BYTES = 64 * 1024
NEWEST_FIRST = "ORDER BY scheduled_ms DESC, attempt DESC, run_id DESC"
RUN_COLUMNS = (
    "run_id, job_id, job_name, scheduled_ms, attempt, status, dispatcher, executor, host, pid, exit_code, "
    "started_ms, finished_ms, output, output_truncated, error, created_ms, updated_ms, shard, shard_total, trigger"
)


@pytest.fixture(scope="module")
def lists_trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    t = make_trio(tmp_path_factory.mktemp("lists"))
    try:
        t.start("dispatcher")  # creates the schema; no executor needed to read history
        _insert_runs(t)
        yield t
    finally:
        stop_trio(t)


def _insert_runs(t: Trio) -> None:
    """300 runs with 64 KiB of output (19 MB together, over the 16 MiB message
    cap), then 1,200 small ones; seven jobs share each millisecond, as every
    job on the same spec does."""
    t.sql(
        f"INSERT INTO runs ({RUN_COLUMNS}) "
        f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {BIG_RUNS + SMALL_RUNS}) "
        f"SELECT (i % 7 + 1) || '-' || ({BASE_MS} + (i / 7) * 1000) || '-' || (i % 3 + 1) || '.' || i, "
        f"i % 7 + 1, 'job-' || (i % 7 + 1), {BASE_MS} + (i / 7) * 1000, i % 3 + 1, "
        "CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'succeeded' END, 'd', 'e', 'h', 0, 0, 0, 0, "
        f"CASE WHEN i <= {BIG_RUNS} THEN randomblob({OUTPUT_BYTES}) ELSE x'6f6b' END, 0, '', 0, 0, 0, 0, 'schedule' FROM n"
    )


def _all_run_ids(t: Trio) -> list[str]:
    rows = t.sql(f"SELECT run_id FROM runs {NEWEST_FIRST}")
    return [str(r[0]) for r in rows]


def test_run_list_of_300_large_runs_and_paging_loses_nothing(lists_trio: Trio) -> None:
    t = lists_trio
    listed = t.cronctl("run", "list", "--limit", "300", "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 300
    with grpc.insecure_channel(t.dispatcher) as channel:
        api = pb_grpc.AdminStub(channel)
        page = api.ListRuns(pb.ListRunsRequest(limit=1000))
        assert len(page.runs) == 1000 and not any(r.output for r in page.runs)  # summaries
        full = api.GetRun(pb.RunRef(run_id=page.runs[-1].run_id))
        assert len(full.output) in (2, OUTPUT_BYTES)  # the output is one GetRun away

        # Pages of 5 end inside milliseconds shared by seven runs: nothing lost, nothing twice.
        seen: list[str] = []
        request = pb.ListRunsRequest(limit=5)
        while True:
            reply = api.ListRuns(request)
            seen.extend(r.run_id for r in reply.runs)
            if not reply.next_page_token:
                break
            request.page_token = reply.next_page_token
        assert seen == _all_run_ids(t)

        # A token is bound to its filters; garbage is named.
        first = api.ListRuns(pb.ListRunsRequest(limit=2))
        for bad in (
            pb.ListRunsRequest(limit=2, statuses=["failed"], page_token=first.next_page_token),
            pb.ListRunsRequest(page_token="not-a-token"),
        ):
            with pytest.raises(grpc.RpcError) as err:
                api.ListRuns(bad)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token:" in (err.value.details() or "")
        # before_ms (deprecated) still bounds the list.
        older = api.ListRuns(pb.ListRunsRequest(limit=1000, before_ms=BASE_MS + 10_000))
        assert older.runs and all(r.scheduled_ms < BASE_MS + 10_000 for r in older.runs)


def test_run_list_status_since_until_and_all(lists_trio: Trio) -> None:
    t = lists_trio
    everything = t.cronctl("run", "list", "--all", "--json")
    assert everything.returncode == 0, everything.stderr
    assert [r["run_id"] for r in json.loads(everything.stdout)] == _all_run_ids(t)  # 1,500: two pages

    failed = t.cronctl("run", "list", "--status", "failed", "--all", "--json")
    assert failed.returncode == 0, failed.stderr
    expected = [str(r[0]) for r in t.sql(f"SELECT run_id FROM runs WHERE status = 'failed' {NEWEST_FIRST}")]
    assert [r["run_id"] for r in json.loads(failed.stdout)] == expected and len(expected) == 150

    since, until = BASE_MS + 20_000, BASE_MS + 30_000
    window = t.cronctl("run", "list", "--since", iso_utc(since), "--until", iso_utc(until), "--all", "--json")
    assert window.returncode == 0, window.stderr
    got = json.loads(window.stdout)
    assert len(got) == 70 and all(iso_utc(since) <= r["scheduled"] < iso_utc(until) for r in got)
    both = t.cronctl("run", "list", "--status", "succeeded", "--status", "failed", "--limit", "3", "--json")
    assert len(json.loads(both.stdout)) == 3

    bad = t.cronctl("run", "list", "--since", "yesterday")
    assert bad.returncode == 2 and "since:" in bad.stderr, bad
    bad = t.cronctl("run", "list", "--since", iso_utc(until), "--until", iso_utc(since))
    assert bad.returncode == 2 and "until:" in bad.stderr, bad
    bad = t.cronctl("run", "list", "--status", "weird")
    assert bad.returncode == 2 and "weird" in bad.stderr, bad


def test_job_list_default_and_maximum_page(lists_trio: Trio, tmp_path: Path) -> None:
    t = lists_trio
    seed = t.cronctl("job", "add", "--name", "bulk-0000", "--spec", "@yearly", "--command", "true")
    assert seed.returncode == 0, seed.stderr
    columns = [str(r[1]) for r in t.sql("PRAGMA table_info(jobs)") if r[1] not in ("id", "name")]
    t.sql(
        f"INSERT INTO jobs (name, {', '.join(columns)}) "
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200) "
        f"SELECT printf('bulk-%04d', i), {', '.join(columns)} FROM jobs, n WHERE jobs.name = 'bulk-0000'"
    )
    with grpc.insecure_channel(t.dispatcher) as channel:
        api = pb_grpc.AdminStub(channel)
        first = api.ListJobs(pb.ListJobsRequest())
        assert len(first.jobs) == 500 and first.next_page_token and first.next_after_id == first.jobs[-1].id
        names = [j.name for j in first.jobs]
        request = pb.ListJobsRequest(limit=1000, page_token=first.next_page_token)
        while True:
            reply = api.ListJobs(request)
            assert len(reply.jobs) <= 1000
            names.extend(j.name for j in reply.jobs)
            if not reply.next_page_token:
                break
            request.page_token = reply.next_page_token
        assert names == [f"bulk-{i:04d}" for i in range(1201)]
        with pytest.raises(grpc.RpcError) as err:
            api.ListJobs(pb.ListJobsRequest(limit=1001))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit:" in (err.value.details() or "")
        with pytest.raises(grpc.RpcError) as err:
            api.ListJobs(pb.ListJobsRequest(name_prefix="bulk-1", page_token=first.next_page_token))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token:" in (err.value.details() or "")
    listed = t.cronctl("job", "list", "--json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 1201, listed.stderr
    limited = t.cronctl("job", "list", "--prefix", "bulk-1", "--limit", "5", "--json")
    assert [j["name"] for j in json.loads(limited.stdout)] == [f"bulk-{i}" for i in range(1000, 1005)]


def test_count_runs_counts_a_window_by_status_in_the_store(lists_trio: Trio) -> None:
    t = lists_trio
    since, until = BASE_MS + 20_000, BASE_MS + 150_000
    with grpc.insecure_channel(t.dispatcher) as channel:
        api = pb_grpc.AdminStub(channel)
        reply = api.CountRuns(pb.CountRunsRequest(since_ms=since, until_ms=until))
        expected = t.sql(
            f"SELECT status, count(*) FROM runs WHERE scheduled_ms >= {since} AND scheduled_ms < {until} GROUP BY status"
        )
        assert dict(reply.counts) == {str(s): int(n) for s, n in expected} and set(reply.counts) == {"failed", "succeeded"}
        assert reply.total == sum(int(n) for _, n in expected) > 0
        one_job = api.CountRuns(pb.CountRunsRequest(since_ms=since, job_name="job-3"))
        [(n,)] = t.sql(f"SELECT count(*) FROM runs WHERE job_name = 'job-3' AND scheduled_ms >= {since}")
        assert one_job.total == n > 0
        assert api.CountRuns(pb.CountRunsRequest(since_ms=BASE_MS + 10**9)).total == 0  # nothing yet: no counts
        for bad, field in (
            (pb.CountRunsRequest(), "since_ms"),
            (pb.CountRunsRequest(since_ms=since, until_ms=since), "until_ms"),
        ):
            with pytest.raises(grpc.RpcError) as err:
                api.CountRuns(bad)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith(field)


def test_count_runs_per_bucket_adds_up_to_the_window(lists_trio: Trio) -> None:
    t = lists_trio
    since, until, bucket = BASE_MS + 20_000, BASE_MS + 150_000, 30_000
    with grpc.insecure_channel(t.dispatcher) as channel:
        api = pb_grpc.AdminStub(channel)
        reply = api.CountRuns(pb.CountRunsRequest(since_ms=since, until_ms=until, bucket_ms=bucket))
        rows = t.sql(
            f"SELECT ({since} + (scheduled_ms - {since}) / {bucket} * {bucket}), status, count(*) FROM runs "
            f"WHERE scheduled_ms >= {since} AND scheduled_ms < {until} GROUP BY 1, 2"
        )
        expected: dict[int, dict[str, int]] = {}
        for start, state, n in rows:
            expected.setdefault(int(start), {})[str(state)] = int(n)  # type: ignore[call-overload]
        assert {b.start_ms: dict(b.counts) for b in reply.buckets} == expected and len(expected) == 5
        assert [b.start_ms for b in reply.buckets] == sorted(expected)
        whole = api.CountRuns(pb.CountRunsRequest(since_ms=since, until_ms=until))
        assert dict(reply.counts) == dict(whole.counts) and reply.total == whole.total
        for bad in (
            pb.CountRunsRequest(since_ms=since, bucket_ms=bucket),  # no until_ms
            pb.CountRunsRequest(since_ms=since, until_ms=since + 1001, bucket_ms=1),  # 1001 buckets
        ):
            with pytest.raises(grpc.RpcError) as err:
                api.CountRuns(bad)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith("bucket_ms")
