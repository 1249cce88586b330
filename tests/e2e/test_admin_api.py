"""The admin API through cronctl and the generated stubs: audit, tail, executors, paging."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc
from testing_support.services import REPO, wait_for
from testing_support.trio import Trio

pytestmark = pytest.mark.xdist_group("semantics")


def test_audit_log_records_who_changed_what(busy_trio: Trio) -> None:
    assert busy_trio.cronctl("job", "add", "--name", "audited", "--spec", "@daily", "--command", "true").returncode == 0
    assert busy_trio.cronctl("job", "edit", "audited", "--command", "echo changed").returncode == 0
    assert busy_trio.cronctl("job", "pause", "audited").returncode == 0
    assert busy_trio.cronctl("job", "delete", "audited").returncode == 0
    listed = busy_trio.cronctl("audit", "list", "--target", "audited", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert [e["action"] for e in entries] == ["job.delete", "job.pause", "job.update", "job.create"]
    update = entries[2]
    assert update["before"]["command"] == "true" and update["after"]["command"] == "echo changed"
    assert all(e["actor"] == "local" for e in entries)  # no tokens configured here
    assert entries[0]["after"] is None and entries[0]["before"]["name"] == "audited"


def test_tail_follows_live_output_until_the_run_ends(busy_trio: Trio, tmp_path: Path) -> None:
    go = tmp_path / "go"
    command = f"echo first; while [ ! -e {go} ]; do sleep 0.05; done; echo second"
    assert busy_trio.cronctl("job", "add", "--name", "tailed", "--spec", "@yearly", "--command", command).returncode == 0
    run_id = json.loads(busy_trio.cronctl("job", "run", "tailed", "--json").stdout)["run_id"]
    wait_for(
        lambda: busy_trio.sql("SELECT 1 FROM runs WHERE run_id = ? AND status = 'running'", (run_id,)), 10, "the run to start"
    )
    tail = subprocess.Popen(
        [sys.executable, "-m", "crontrio.cronctl.main", "--server", busy_trio.dispatcher, "run", "tail", "-f", run_id],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert tail.stdout is not None
        assert tail.stdout.readline() == b"first\n"  # the output so far, while the run still waits
        assert tail.poll() is None
        go.touch()
        assert tail.stdout.readline() == b"second\n"  # live
        assert tail.wait(15) == 0
        assert b"succeeded" in tail.stderr.read()  # type: ignore[union-attr]
    finally:
        if tail.poll() is None:
            tail.kill()
    recorded = busy_trio.cronctl("run", "tail", run_id)  # without -f: what the store has
    assert recorded.stdout == "first\nsecond\n"


def test_executor_list_and_dispatcher_list(busy_trio: Trio) -> None:
    executors = json.loads(busy_trio.cronctl("executor", "list", "--json").stdout)
    assert {e["address"] for e in executors} == {busy_trio.executor, busy_trio.executor2}
    wait_for(
        lambda: all(e["healthy"] for e in json.loads(busy_trio.cronctl("executor", "list", "--json").stdout)),
        10,
        "both executors healthy",
    )
    dispatchers = json.loads(busy_trio.cronctl("dispatcher", "list", "--json").stdout)
    assert len(dispatchers) == 1 and dispatchers[0]["address"] == busy_trio.dispatcher


def test_list_paging_filters_and_status_codes(busy_trio: Trio) -> None:
    with grpc.insecure_channel(busy_trio.dispatcher) as channel:
        admin = pb_grpc.AdminStub(channel)
        for i in range(5):
            admin.CreateJob(pb.Job(name=f"page-{i}", spec="@yearly", command="true"))
        first = admin.ListJobs(pb.ListJobsRequest(name_prefix="page-", limit=2))
        second = admin.ListJobs(pb.ListJobsRequest(name_prefix="page-", limit=2, after_id=first.next_after_id))
        third = admin.ListJobs(pb.ListJobsRequest(name_prefix="page-", limit=2, after_id=second.next_after_id))
        assert [j.name for j in [*first.jobs, *second.jobs, *third.jobs]] == [f"page-{i}" for i in range(5)]
        assert third.next_after_id == 0
        checks = [
            (
                lambda: admin.CreateJob(pb.Job(name="page-0", spec="@yearly", command="true")),
                grpc.StatusCode.ALREADY_EXISTS,
                "name:",
            ),
            (
                lambda: admin.CreateJob(pb.Job(name="bad", spec="61 * * * *", command="true")),
                grpc.StatusCode.INVALID_ARGUMENT,
                "spec:",
            ),
            (lambda: admin.GetJob(pb.JobRef(name="nope")), grpc.StatusCode.NOT_FOUND, "no job"),
            (lambda: admin.GetRun(pb.RunRef(run_id="1-1-1")), grpc.StatusCode.NOT_FOUND, "no run"),
            (lambda: admin.ListRuns(pb.ListRunsRequest(statuses=["weird"])), grpc.StatusCode.INVALID_ARGUMENT, "statuses:"),
        ]
        for call, code, fragment in checks:
            try:
                call()
            except grpc.RpcError as exc:
                assert exc.code() == code and fragment in (exc.details() or ""), (fragment, exc)
            else:
                pytest.fail(f"expected {code.name} ({fragment!r}), the call succeeded")
        valid = admin.ValidateJob(pb.Job(name="v", spec="0 9 * * MON", timezone="europe/paris", command="true"))
        assert valid.timezone == "Europe/Paris" and valid.next_fire_ms > time.time() * 1000
        with pytest.raises(grpc.RpcError):
            admin.GetJob(pb.JobRef(name="v"))  # validating stored nothing
        for i in range(5):
            admin.DeleteJob(pb.JobRef(name=f"page-{i}"))


def test_readme_python_client_example_runs(busy_trio: Trio) -> None:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- client-example -->\n```python\n(.*?)```", readme, re.S)
    assert match, "the README lost its Python client example"
    code = match.group(1).replace('"127.0.0.1:5920"', repr(busy_trio.dispatcher))
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"CRONTRIO_TOKEN": "", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "nightly-report" in result.stdout
