"""Who may make an executor run something, and what a job can see.

Real executor and dispatcher processes, called over gRPC as an attacker
who can reach their ports would: without the cluster credential, or with a
wrong one, nothing runs.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from crontrio.common.cluster import CLUSTER_HEADER
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc
from testing_support.services import ServiceProcess, cluster_secret, free_port, is_serving, wait_for, write_conf

# A developer's or CI's own CRONTRIO_* settings must not change these tests.
CLEAN = {"CRONTRIO_CLUSTER_SECRET": "", "CRONTRIO_MONITOR_TOKEN": ""}
WRONG = [(CLUSTER_HEADER, "not-the-cluster-secret-at-all")]
RUN_VARS = ("CRONTRIO_RUN_ID", "CRONTRIO_JOB_ID", "CRONTRIO_JOB_NAME", "CRONTRIO_SCHEDULED_MS", "CRONTRIO_ATTEMPT")


def _start(
    service: str, directory: Path, sections: dict[str, dict[str, str]], address: str, env: dict[str, str]
) -> ServiceProcess:
    directory.mkdir(parents=True, exist_ok=True)
    conf = write_conf(directory, sections)
    proc = ServiceProcess(service, conf, directory / f"{service}.log", env={**CLEAN, **env})
    try:
        wait_for(lambda: proc.proc.poll() is None and is_serving(address), 30, f"{service} on {address} to serve")
    except AssertionError:
        proc.kill()
        raise AssertionError(f"{service} did not start; its log:\n{proc.log_text()}") from None
    return proc


def start_executor(directory: Path, env: dict[str, str] | None = None, **keys: str) -> tuple[ServiceProcess, str]:
    address = f"127.0.0.1:{free_port()}"
    sections = {
        "executor": {"listen": address, "journal": str(directory / "journal.db"), "kill_grace_seconds": "1", **keys},
        "log": {"level": "DEBUG"},
    }
    return _start("executor", directory, sections, address, env or {}), address


def run_request(command: str) -> pb.RunRequest:
    run_id = f"9-{uuid.uuid4().hex[:12]}-1"
    task = pb.ShellTask(command=command)
    return pb.RunRequest(run_id=run_id, job_id=9, job_name="trust", scheduled_ms=1, attempt=1, shell=task)


def refused(call: Callable[[], object]) -> grpc.StatusCode:
    """The status code of a call expected to fail (streams are drained in `call`)."""
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[attr-defined,no-any-return]
    raise AssertionError("the call was not refused")


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, str, Path]]:
    directory = tmp_path_factory.mktemp("trust-executor")
    proc, address = start_executor(directory)
    yield proc, address, directory
    assert proc.stop() == 0, proc.log_text()


# ----------------------------------------------------- item 1: the executor port


def test_executor_runs_nothing_without_the_cluster_credential(executor: tuple[ServiceProcess, str, Path], tmp_path: Path) -> None:
    proc, address, directory = executor
    secret = cluster_secret(directory)
    good = [(CLUSTER_HEADER, secret)]
    markers = {how: tmp_path / f"ran-{how}" for how in ("none", "wrong", "session-none", "session-wrong")}
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ExecutorStub(channel)
        requests = {how: run_request(f"touch {marker}") for how, marker in markers.items()}
        # Run: no credential, a wrong one.
        assert refused(lambda: list(stub.Run(requests["none"], timeout=10))) == grpc.StatusCode.UNAUTHENTICATED
        assert refused(lambda: list(stub.Run(requests["wrong"], timeout=10, metadata=WRONG))) == grpc.StatusCode.UNAUTHENTICATED
        # Session (the dispatchers' fast path): the same.
        first = pb.SessionRequest(run=requests["session-none"])
        assert refused(lambda: list(stub.Session(iter([first]), timeout=10))) == grpc.StatusCode.UNAUTHENTICATED
        second = pb.SessionRequest(run=requests["session-wrong"])
        assert refused(lambda: list(stub.Session(iter([second]), timeout=10, metadata=WRONG))) == grpc.StatusCode.UNAUTHENTICATED
        # Every other call, without a credential and with a wrong one.
        for metadata in (None, WRONG):
            for call in (
                lambda m=metadata: stub.Kill(pb.KillRequest(run_id="9-1-1"), timeout=10, metadata=m),
                lambda m=metadata: stub.Ack(pb.AckRequest(run_ids=["9-1-1"]), timeout=10, metadata=m),
                lambda m=metadata: stub.ListResults(pb.ListResultsRequest(), timeout=10, metadata=m),
                lambda m=metadata: stub.Status(pb.ExecutorStatusRequest(), timeout=10, metadata=m),
                lambda m=metadata: list(stub.Attach(pb.AttachRequest(run_id="9-1-1"), timeout=10, metadata=m)),
            ):
                assert refused(call) == grpc.StatusCode.UNAUTHENTICATED
        # Reflection lists nothing to a caller without the credential.
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        listing = iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        assert refused(lambda: list(reflect.ServerReflectionInfo(listing, timeout=10))) == grpc.StatusCode.UNAUTHENTICATED

        # With the secret the same executor runs commands: the refusals above were the credential.
        proof = tmp_path / "ran-with-secret"
        events = list(stub.Run(run_request(f"touch {proof}"), timeout=30, metadata=good))
        assert events[-1].finished.status == "succeeded", events[-1]
        assert proof.exists()
        results = stub.ListResults(pb.ListResultsRequest(), timeout=10, metadata=good)
        known = {r.run_id for r in results.results} | set(results.running_run_ids)
    # Nothing refused ran, started, or was journaled.
    assert not any(m.exists() for m in markers.values()), [m.name for m in markers.values() if m.exists()]
    assert not known & {r.run_id for r in requests.values()}
    log = proc.log_text()
    assert "refused /crontrio.v1.Executor/Run: missing cluster credential" in log
    assert "refused /crontrio.v1.Executor/Run: wrong cluster secret" in log
    assert secret not in log  # the secret itself is never logged


def test_embedded_executor_creates_a_private_secret_file(executor: tuple[ServiceProcess, str, Path]) -> None:
    _, _, directory = executor
    path = directory / "var" / "cluster.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(cluster_secret(directory)) >= 32


def test_executor_on_a_routable_address_without_a_secret_refuses_to_start(tmp_path: Path) -> None:
    address = f"0.0.0.0:{free_port()}"
    conf = write_conf(tmp_path, {"executor": {"listen": address, "journal": str(tmp_path / "journal.db")}})
    proc = ServiceProcess("executor", conf, tmp_path / "executor.log", env=CLEAN)
    try:
        code = proc.proc.wait(30)
    finally:
        proc.kill()
    log = proc.log_text()
    assert code != 0, log
    assert "cluster.secret" in log and "CRONTRIO_CLUSTER_SECRET" in log and "[tls] internal" in log, log
    assert not (tmp_path / "var" / "cluster.secret").exists()  # not made up on a routable address


def test_executor_on_a_routable_address_serves_with_a_configured_secret(tmp_path: Path) -> None:
    port = free_port()
    secret = "s3cret-" + uuid.uuid4().hex
    sections = {"executor": {"listen": f"0.0.0.0:{port}", "journal": str(tmp_path / "journal.db")}}
    proc = _start("executor", tmp_path, sections, f"127.0.0.1:{port}", {"CRONTRIO_CLUSTER_SECRET": secret})
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.ExecutorStub(channel)
            assert refused(lambda: stub.Status(pb.ExecutorStatusRequest(), timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
            assert stub.Status(pb.ExecutorStatusRequest(), timeout=10, metadata=[(CLUSTER_HEADER, secret)]).address
    finally:
        assert proc.stop() == 0, proc.log_text()
    assert secret not in proc.log_text()


# ----------------------------------------------------- item 1: the Control service


def dispatcher_sections(directory: Path, listen: str, **dispatcher_keys: str) -> dict[str, dict[str, str]]:
    return {
        "database": {"driver": "sqlite", "path": str(directory / "crontrio.db")},
        "dispatcher": {
            "listen": listen,
            "executors": f"127.0.0.1:{free_port()}",
            "shutdown_grace_seconds": "2",
            **dispatcher_keys,
        },
        "log": {"level": "DEBUG"},
    }


def test_control_refuses_calls_without_the_cluster_secret(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    proc = _start("dispatcher", tmp_path, dispatcher_sections(tmp_path, address), address, {})
    try:
        secret = cluster_secret(tmp_path)
        with grpc.insecure_channel(address) as channel:
            control = pb_grpc.ControlStub(channel)
            for metadata in (None, WRONG):
                for call in (
                    lambda m=metadata: control.NotifyJobChanges(pb.JobChangesNotice(), timeout=10, metadata=m),
                    lambda m=metadata: control.ReportExecutorHealth(pb.ExecutorHealthReport(), timeout=10, metadata=m),
                    lambda m=metadata: control.RetryRun(pb.RetryRunRequest(run_id="1-1-1"), timeout=10, metadata=m),
                ):
                    assert refused(call) == grpc.StatusCode.UNAUTHENTICATED
            # With the secret it answers; the admin API (no tokens: loopback) is not affected.
            assert control.NotifyJobChanges(pb.JobChangesNotice(), timeout=10, metadata=[(CLUSTER_HEADER, secret)]) is not None
            pb_grpc.AdminStub(channel).ListJobs(pb.ListJobsRequest(), timeout=10)
    finally:
        assert proc.stop() == 0, proc.log_text()
    assert "refused /crontrio.v1.Control/NotifyJobChanges: missing cluster credential" in proc.log_text()
    assert stat.S_IMODE((tmp_path / "var" / "cluster.secret").stat().st_mode) == 0o600


# A configured admin token (cronctl token new), so the dispatcher may listen beyond loopback.
TOKENS = {"tokens": {"root": "admin:" + "ab" * 32}}


def test_dispatcher_control_on_a_routable_address_needs_a_secret(tmp_path: Path) -> None:
    sections = dispatcher_sections(tmp_path, f"0.0.0.0:{free_port()}", allow_plaintext_tokens="true") | TOKENS
    proc = ServiceProcess("dispatcher", write_conf(tmp_path, sections), tmp_path / "dispatcher.log", env=CLEAN)
    try:
        code = proc.proc.wait(30)
    finally:
        proc.kill()
    log = proc.log_text()
    assert code != 0 and "cluster.secret" in log and "CRONTRIO_CLUSTER_SECRET" in log, log
    assert not (tmp_path / "var" / "cluster.secret").exists()


# ----------------------------------------------------- item 4: tokens in plaintext


def test_tokens_in_plaintext_on_a_routable_address_refuse_to_start(tmp_path: Path) -> None:
    sections = dispatcher_sections(tmp_path, f"0.0.0.0:{free_port()}") | TOKENS
    env = {"CRONTRIO_CLUSTER_SECRET": "s3cret-" + uuid.uuid4().hex}
    proc = ServiceProcess("dispatcher", write_conf(tmp_path, sections), tmp_path / "dispatcher.log", env={**CLEAN, **env})
    try:
        code = proc.proc.wait(30)
    finally:
        proc.kill()
    log = proc.log_text()
    assert code != 0, log
    assert "bearer tokens in clear" in log and "allow_plaintext_tokens" in log and "[tls] admin" in log, log


def test_allow_plaintext_tokens_starts_with_a_warning(tmp_path: Path) -> None:
    port = free_port()
    sections = dispatcher_sections(tmp_path, f"0.0.0.0:{port}", allow_plaintext_tokens="true") | TOKENS
    env = {"CRONTRIO_CLUSTER_SECRET": "s3cret-" + uuid.uuid4().hex}
    proc = _start("dispatcher", tmp_path, sections, f"127.0.0.1:{port}", env)
    try:
        log = proc.log_text()
        assert "WARNING" in log and "bearer tokens travel in clear" in log, log
    finally:
        assert proc.stop() == 0, proc.log_text()


# ----------------------------------------------------- item 2: what a job can see


def test_a_job_sees_a_clean_environment_not_the_services_secrets(tmp_path: Path) -> None:
    secret = "cluster-" + uuid.uuid4().hex
    service_env = {
        "CRONTRIO_DATABASE_PASSWORD": "db-password-" + uuid.uuid4().hex,
        "CRONTRIO_MONITOR_TOKEN": "monitor-token-" + uuid.uuid4().hex,
        "CRONTRIO_CLUSTER_SECRET": secret,
        "CRONTRIO_TOKENS_ALICE": "admin:" + "cd" * 32,
        "FOO": "unrelated-" + uuid.uuid4().hex,
        "KEEP_ME": "allowed-value",
        "TZ": "Europe/Berlin",
        "LANG": "C.UTF-8",
    }
    proc, address = start_executor(tmp_path, service_env, inherit_env="KEEP_ME, NOT_SET_ANYWHERE")
    try:
        request = run_request("env")
        request.shell.env["JOB_OWN"] = "job-value"
        with grpc.insecure_channel(address) as channel:
            events = list(pb_grpc.ExecutorStub(channel).Run(request, timeout=30, metadata=[(CLUSTER_HEADER, secret)]))
    finally:
        assert proc.stop() == 0, proc.log_text()
    finished = events[-1].finished
    assert finished.status == "succeeded", finished
    seen = dict(line.split("=", 1) for line in finished.output_tail.decode().splitlines() if "=" in line)
    # No service secret, by name or by value; nothing not asked for.
    for name, value in service_env.items():
        if name.startswith("CRONTRIO_") or name == "FOO":
            assert name not in seen, name
            assert value not in finished.output_tail.decode(), name
    # The baseline, the allowlisted name, the job's own env and the run ids.
    assert seen["PATH"] == os.environ.get("PATH", seen["PATH"]) and seen["PATH"]
    assert seen["HOME"] and seen["USER"] and seen["SHELL"]
    assert seen["LANG"] == "C.UTF-8" and seen["TZ"] == "Europe/Berlin"
    assert seen["KEEP_ME"] == "allowed-value" and "NOT_SET_ANYWHERE" not in seen
    assert seen["JOB_OWN"] == "job-value"
    assert seen["CRONTRIO_RUN_ID"] == request.run_id and seen["CRONTRIO_JOB_NAME"] == "trust"
    # Nothing else but what the shell itself sets.
    expected = {"PATH", "HOME", "LANG", "USER", "LOGNAME", "SHELL", "TZ", "KEEP_ME", "JOB_OWN", *RUN_VARS}
    assert set(seen) - expected <= {"PWD", "SHLVL", "_", "OLDPWD"}, set(seen) - expected
