"""Bad input through the real admin API, cronctl and executor: a clear error
naming the field, nothing stored, nothing that acts on a terminal or forges
a log line (issue 12, items 12-15)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc
from testing_support.services import cluster_secret, cluster_sync_channel, wait_for
from testing_support.trio import Trio

pytestmark = pytest.mark.xdist_group("semantics")

SHELL = {"spec": "@yearly", "command": "true"}
HTTP = {"spec": "@yearly", "type": "http", "command": "http://127.0.0.1:9/"}
# (name, the job's fields, the field the API names, the field the executor names)
CASES = [
    ("hdr-newline", {**HTTP, "http_headers": {"X-A\n": "v"}}, "headers", "http.headers"),
    ("hdr-crlf", {**HTTP, "http_headers": {"X-A": "v\r\nX-Injected: 1"}}, "headers", "http.headers"),
    ("env-nul", {**SHELL, "env": {"A": "x\x00y"}}, "env", "shell.env"),
    ("kw-101", {**SHELL, "keywords": [f"k{i}" for i in range(101)]}, "keywords", "keywords"),
    ("cmd-15mb", {**SHELL, "command": "echo " + "x" * 15_000_000}, "command", "shell.command"),
    ("user-newline", {**SHELL, "run_as_user": "root\n"}, "user", "shell.user"),
    ("phone-newline", {**SHELL, "notify_phones": ["+15550100\n"]}, "notify_phones", ""),
    ("body-70k", {**HTTP, "http_body": "b" * 70_000}, "body", "http.body"),
    ("spec-300", {**SHELL, "spec": "0 " + "1," * 148 + "1 * * *"}, "spec", ""),
]
BIG = [("grpc.max_send_message_length", 32 * 1024 * 1024), ("grpc.max_receive_message_length", 32 * 1024 * 1024)]


@pytest.fixture
def admin(busy_trio: Trio) -> Iterator[pb_grpc.AdminStub]:
    with grpc.insecure_channel(busy_trio.dispatcher, options=BIG) as channel:
        yield pb_grpc.AdminStub(channel)


@pytest.fixture
def executor(busy_trio: Trio) -> Iterator[pb_grpc.ExecutorStub]:
    with cluster_sync_channel(busy_trio.executor, cluster_secret(busy_trio.conf.parent), options=BIG) as channel:
        yield pb_grpc.ExecutorStub(channel)


def _refusal(call: object, request: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call(request, timeout=30)  # type: ignore[operator]
    return err.value


@pytest.mark.parametrize(("name", "fields", "api_field", "executor_field"), CASES, ids=[c[0] for c in CASES])
def test_admin_api_refuses_naming_the_field_and_stores_nothing(
    admin: pb_grpc.AdminStub, name: str, fields: dict[str, object], api_field: str, executor_field: str
) -> None:
    job = pb.Job(name=name, **fields)  # type: ignore[arg-type]
    for call in (admin.CreateJob, admin.ValidateJob):
        err = _refusal(call, job)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
        assert (err.details() or "").startswith(f"{api_field}:"), err.details()
    assert _refusal(admin.GetJob, pb.JobRef(name=name)).code() == grpc.StatusCode.NOT_FOUND
    assert name not in [j.name for j in admin.ListJobs(pb.ListJobsRequest(name_prefix=name)).jobs]


@pytest.mark.parametrize(
    ("name", "fields", "executor_field"), [(c[0], c[1], c[3]) for c in CASES if c[3]], ids=[c[0] for c in CASES if c[3]]
)
def test_executor_applies_the_same_rules(
    executor: pb_grpc.ExecutorStub, name: str, fields: dict[str, object], executor_field: str
) -> None:
    request = pb.RunRequest(run_id=f"9-{int(time.time() * 1000)}-1", job_id=9, job_name=name, attempt=1)
    if fields.get("type") == "http":
        request.http.CopyFrom(
            pb.HttpTask(url=str(fields["command"]), headers=fields.get("http_headers", {}), body=str(fields.get("http_body", "")))
        )  # type: ignore[arg-type]
    else:
        request.shell.CopyFrom(
            pb.ShellTask(command=str(fields["command"]), env=fields.get("env", {}), user=str(fields.get("run_as_user", "")))
        )  # type: ignore[arg-type]
    request.keywords.extend(fields.get("keywords", []))  # type: ignore[arg-type]
    with pytest.raises(grpc.RpcError) as err:
        list(executor.Run(request, timeout=30))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert (err.value.details() or "").startswith(f"{executor_field}:"), err.value.details()


def test_huge_preview_spec_is_refused_fast_and_the_loop_keeps_serving(admin: pb_grpc.AdminStub) -> None:
    """A 1.7 MB spec took the dispatcher's event loop for seconds; now it is
    refused before parsing, and the largest allowed preview (a sparse spec,
    1,000 instants) runs off the loop: cheap calls are answered meanwhile."""
    huge = pb.PreviewSpecRequest(spec="1," * 850_000 + "1 * * * *", count=1)
    sparse = pb.PreviewSpecRequest(spec="0 0 29 2 1", count=1000)
    done = threading.Event()
    outcomes: list[grpc.StatusCode] = []

    def previews() -> None:
        try:
            for request in (huge, sparse, huge, sparse):
                try:
                    admin.PreviewSpec(request, timeout=60)
                    outcomes.append(grpc.StatusCode.OK)
                except grpc.RpcError as exc:
                    outcomes.append(exc.code())
                    assert "spec:" in (exc.details() or "")
        finally:
            done.set()

    worker = threading.Thread(target=previews)
    started = time.monotonic()
    worker.start()
    slowest = 0.0
    while not done.is_set():  # a cheap call, again and again, for as long as the previews take
        t0 = time.monotonic()
        admin.ListDispatchers(pb.ListDispatchersRequest(), timeout=30)
        slowest = max(slowest, time.monotonic() - t0)
    worker.join()
    took = time.monotonic() - started
    assert outcomes == [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OK] * 2
    assert took < 3.0, f"two huge specs and two full previews took {took:.2f}s"
    assert slowest < 1.0, f"a cheap call waited {slowest:.2f}s behind PreviewSpec"


def test_preview_out_of_range_is_invalid_argument(admin: pb_grpc.AdminStub) -> None:
    before_1900 = -2_208_988_800_001
    for request, field in (
        (pb.PreviewSpecRequest(spec="* * * * *", after_ms=before_1900), "after_ms"),
        (pb.PreviewSpecRequest(spec="* * * * *", after_ms=2**62), "after_ms"),
        (pb.PreviewSpecRequest(spec="* * * * *", count=-1), "count"),
        (pb.PreviewSpecRequest(spec="* * * * *", count=1001), "count"),
        (pb.PreviewSpecRequest(spec="* * * * *", timezone="Mars/" + "x" * 100), "timezone"),
    ):
        err = _refusal(admin.PreviewSpec, request)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and (err.details() or "").startswith(f"{field}:"), err.details()
    # The edges themselves are answered.
    assert len(admin.PreviewSpec(pb.PreviewSpecRequest(spec="0 0 1 1 *", after_ms=before_1900 + 1, count=2)).fire_ms) == 2


NUMERIC_OPTIONS = ["--timeout", "--retries", "--retry-interval", "--retry-backoff", "--retry-max-interval", "--retry-jitter",
                   "--catch-up-window", "--expect-status"]  # fmt: skip


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e400"])
def test_cronctl_refuses_non_finite_numbers_naming_the_option(busy_trio: Trio, value: str) -> None:
    for option in NUMERIC_OPTIONS:
        result = busy_trio.cronctl("job", "add", "--name", "num", "--spec", "@daily", "--command", "true", option, value)
        assert result.returncode == 2, (option, result.stderr)
        assert "Traceback" not in result.stderr and "finite" in result.stderr, (option, result.stderr)
        field = option.lstrip("-").replace("-", "_").replace("expect_status", "expected_statuses")
        assert result.stderr.startswith(f"error: {field}:"), (option, result.stderr)
    assert busy_trio.cronctl("job", "show", "num").returncode == 1  # nothing stored


def test_cronctl_other_numbers_and_times_give_no_traceback(busy_trio: Trio) -> None:
    for args in (
        ("job", "show", "99999999999999999999999"),  # beyond int64: a name, not found
        ("job", "show", "²"),
        ("run", "list", "--job", "99999999999999999999999"),
        ("cron", "next", "* * * * *", "--after", "1800-01-01T00:00:00Z"),
        ("audit", "list", "--before-id", "99999999999999999999999"),
    ):
        result = busy_trio.cronctl(*args)
        assert result.returncode in (1, 2), (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, (args, result.stderr)


def test_cronctl_escapes_controls_in_tables_and_tail_but_json_is_exact(busy_trio: Trio) -> None:
    command = "printf 'a\\033]0;owned\\007\\tb\\033[2J\\r\\nc\\n'  # \x1b[31m in the command"
    with grpc.insecure_channel(busy_trio.dispatcher) as channel:
        admin = pb_grpc.AdminStub(channel)
        admin.CreateJob(pb.Job(name="escapes", spec="@yearly", command=command))
        run_id = admin.RunJob(pb.JobRef(name="escapes")).first_run_id
    wait_for(lambda: busy_trio.sql("SELECT 1 FROM runs WHERE run_id = ? AND status = 'succeeded'", (run_id,)), 20, "the run")
    for args in (("job", "list"), ("job", "show", "escapes"), ("run", "show", run_id), ("run", "tail", run_id)):
        result = busy_trio.cronctl(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert "\x1b" not in result.stdout and "\r" not in result.stdout and "\x07" not in result.stdout, (args, result.stdout)
        assert "\\x1b" in result.stdout, (args, result.stdout)
    tail = busy_trio.cronctl("run", "tail", run_id).stdout
    assert tail == "a\\x1b]0;owned\\x07\tb\\x1b[2J\\r\nc\n"  # newlines and tabs kept
    shown = json.loads(busy_trio.cronctl("job", "show", "escapes", "--json").stdout)
    assert shown["command"] == command  # --json stays exact
    assert json.loads(busy_trio.cronctl("run", "show", run_id, "--json").stdout)["output"] == "a\x1b]0;owned\x07\tb\x1b[2J\r\nc\n"


def test_executor_log_line_cannot_be_forged_by_a_job_name(busy_trio: Trio, executor: pb_grpc.ExecutorStub) -> None:
    marker = f"FORGED-{time.time_ns()}"
    request = pb.RunRequest(run_id=f"8-{int(time.time() * 1000)}-1", job_id=8, job_name=f"x\n{marker} ERROR all good", attempt=1)
    request.shell.CopyFrom(pb.ShellTask(command="true"))
    events = list(executor.Run(request, timeout=30))
    assert events[-1].WhichOneof("event") == "finished"
    executor.Ack(pb.AckRequest(run_ids=[request.run_id]), timeout=10)

    def logged() -> str:
        text = busy_trio.procs["executor"].log_text()
        return text if marker in text else ""

    log = wait_for(logged, 10, "the run in the log")
    lines = [line for line in log.splitlines() if marker in line]
    assert lines and all(not line.startswith(marker) for line in lines), lines
    assert any(f"x\\n{marker}" in line for line in lines), lines
