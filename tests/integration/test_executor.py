"""The executor as a real process: `python -m crontrio.executor` on a free port, driven over gRPC."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc
from testing_support.executor import (
    KILL_GRACE,
    Executor,
    all_dead,
    health,
    http,
    lines,
    pids_in,
    read_rest,
    read_until,
    rss_kib,
    run,
    shell,
    start_executor,
    start_then_crash,
)
from testing_support.services import free_port, pid_alive, wait_for, wait_until

# Helpers shared by the executor tests: testing_support/executor.py.


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Executor]:
    ex = start_executor(tmp_path_factory.mktemp("executor"))
    yield ex
    code, took = ex.stop()
    assert code == 0, f"executor exited {code} on SIGTERM; log:\n{ex.proc.log_text()}"
    assert took < 5, f"executor took {took:.1f}s to stop"


class _Handler(BaseHTTPRequestHandler):
    release: threading.Event  # set on the class by the fixture

    def do_GET(self) -> None:
        if self.path == "/ok":
            self._reply(200, b"hello from the test server\n")
        elif self.path.startswith("/status/"):
            code = int(self.path.rsplit("/", 1)[1])
            self._reply(code, f"status {code}\n".encode())
        elif self.path == "/slow":
            # Outlasts the task's timeout; released at teardown.
            self.release.wait(30)
            self._reply(200, b"too late\n")
        else:
            self._reply(404, b"no such path\n")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._reply(200, b"POST " + self.headers.get("X-Test", "").encode() + b" " + body)

    def _reply(self, code: int, body: bytes) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the executor gave up on us (timeout test)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    release = threading.Event()
    handler = type("Handler", (_Handler,), {"release": release})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    release.set()
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------- helpers


# ---------------------------------------------------------------- shell tasks


@pytest.mark.asyncio
async def test_exit_code_zero_succeeds_with_full_events(stub: crontrio_pb2_grpc.ExecutorStub, executor: Executor) -> None:
    s = await run(stub, shell("echo hello"))
    started, finished = s.started, s.finished
    assert started.pid > 0 and started.host and started.executor == executor.address and started.started_ms > 0
    assert finished.status == "succeeded" and finished.exit_code == 0 and finished.error == ""
    assert s.output == finished.output_tail == b"hello\n" and not finished.output_truncated
    assert (finished.pid, finished.host, finished.executor) == (started.pid, started.host, started.executor)
    assert finished.started_ms == started.started_ms <= finished.finished_ms
    assert finished.run_id == started.run_id


@pytest.mark.asyncio
async def test_exit_code_three_fails(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    s = await run(stub, shell("echo partial; exit 3"))
    assert s.finished.status == "failed" and s.finished.exit_code == 3
    assert s.finished.output_tail == b"partial\n"


@pytest.mark.asyncio
async def test_stdout_and_stderr_are_one_stream(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    s = await run(stub, shell("echo to-stdout; echo to-stderr >&2; echo stdout-again"))
    lines = s.finished.output_tail.splitlines()
    assert sorted(lines) == [b"stdout-again", b"to-stderr", b"to-stdout"]
    assert lines.index(b"to-stdout") < lines.index(b"stdout-again")
    assert s.output == s.finished.output_tail


@pytest.mark.asyncio
async def test_environment_and_workdir(stub: crontrio_pb2_grpc.ExecutorStub, tmp_path: Path) -> None:
    request = shell(
        'printf "%s|%s|%s|%s|%s|%s\\n" "$CRONTRIO_RUN_ID" "$CRONTRIO_JOB_ID" "$CRONTRIO_JOB_NAME" '
        '"$CRONTRIO_SCHEDULED_MS" "$CRONTRIO_ATTEMPT" "$GREETING"; pwd',
        env={"GREETING": "hi there"},
        workdir=str(tmp_path),
        job_id=42,
        job_name="env-job",
        scheduled_ms=1_700_000_123_000,
        attempt=2,
    )
    s = await run(stub, request)
    assert s.finished.status == "succeeded", s.finished
    first, cwd = s.finished.output_tail.decode().splitlines()
    assert first == f"{request.run_id}|42|env-job|1700000123000|2|hi there"
    assert os.path.samefile(cwd, tmp_path)


@pytest.mark.asyncio
async def test_missing_workdir_fails_with_clear_error(stub: crontrio_pb2_grpc.ExecutorStub, tmp_path: Path) -> None:
    s = await run(stub, shell("echo never", workdir=str(tmp_path / "missing")))
    assert s.finished.status == "failed" and "workdir" in s.finished.error and "missing" in s.finished.error
    assert s.started.pid == 0 and s.finished.output_tail == b""


@pytest.mark.asyncio
async def test_bad_request_names_the_field(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await run(stub, shell("   "))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "shell.command" in str(err.value.details())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await run(stub, http("ftp://example.com/"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "http.url" in str(err.value.details())


@pytest.mark.asyncio
async def test_huge_output_keeps_a_bounded_tail(stub: crontrio_pb2_grpc.ExecutorStub, executor: Executor) -> None:
    limit = 4096
    request = shell("yes 0123456789abcdef | head -c 52428800; echo; echo END", output_limit_bytes=limit)
    async with executor.channel() as slow_channel:
        # A second caller attaches and then reads nothing until the run is
        # over: the executor must drop its live chunks, not buffer 50 MB.
        first = stub.Run(request, timeout=60)
        head: list[pb.RunEvent] = []
        await read_until(first, lambda out: len(out) > 0, head)
        slow = crontrio_pb2_grpc.ExecutorStub(slow_channel).Run(request, timeout=60)
        slow_first = await slow.read()
        assert slow_first.HasField("started") and slow_first.started.pid == head[0].started.pid
        rest = await read_rest(first)
        finished = rest[-1].finished
        slow_bytes = 0
        slow_events = await read_rest(slow)
    for event in slow_events:
        slow_bytes += len(event.output.data)
    assert finished.status == "succeeded", finished
    assert len(finished.output_tail) == limit and finished.output_truncated
    assert finished.output_tail.endswith(b"\nEND\n") and b"0123456789abcdef\n" in finished.output_tail
    assert slow_events[-1].finished == finished
    assert slow_bytes < 20 * 1024 * 1024, f"a slow caller was sent {slow_bytes} bytes"
    assert rss_kib(executor.pid, "VmHWM") < 200 * 1024, f"executor peak RSS {rss_kib(executor.pid, 'VmHWM')} KiB"


@pytest.mark.asyncio
async def test_timeout_kills_the_whole_process_tree(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    # A plain background child, and a nested shell ignoring TERM (so its
    # sleep ignores it too) that only SIGKILL after the grace period stops.
    command = "sleep 300 & echo $!; sh -c 'trap \"\" TERM; sleep 300 & echo $!; wait' & echo $!; wait"
    started = time.monotonic()
    s = await run(stub, shell(command, timeout_seconds=1))
    took = time.monotonic() - started
    finished = s.finished
    assert finished.status == "timeout", finished
    assert finished.error == "timed out after 1s"
    pids = pids_in(finished.output_tail)
    assert len(pids) == 3, finished.output_tail
    assert await wait_until(lambda: all_dead([finished.pid, *pids]), 5, "the process tree to die", interval=0.05)
    assert KILL_GRACE + 0.8 <= took < KILL_GRACE + 4, f"took {took:.2f}s"


@pytest.mark.asyncio
async def test_kill_on_request(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    request = shell("sleep 300 & echo $!; echo ready; wait")
    call = stub.Run(request, timeout=60)
    seen: list[pb.RunEvent] = []
    output = await read_until(call, lambda out: b"ready" in out, seen)
    reply = await stub.Kill(pb.KillRequest(run_id=request.run_id))
    assert reply.killed
    rest = await read_rest(call)
    finished = rest[-1].finished
    assert finished.status == "killed" and finished.error == "killed on request"
    assert finished.exit_code == -signal.SIGTERM
    assert await wait_until(lambda: all_dead([finished.pid, *pids_in(output)]), 5, "the killed group to die", interval=0.05)
    assert not (await stub.Kill(pb.KillRequest(run_id=request.run_id))).killed
    assert not (await stub.Kill(pb.KillRequest(run_id="no-such-run"))).killed


@pytest.mark.asyncio
async def test_daemonised_child_does_not_hang_the_run(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    # The background sleep keeps stdout open after the shell exits.
    started = time.monotonic()
    s = await run(stub, shell("sleep 30 & echo $!; echo bye"))
    took = time.monotonic() - started
    (daemon,) = pids_in(s.finished.output_tail)
    try:
        assert s.finished.status == "succeeded" and s.finished.output_tail.endswith(b"bye\n")
        assert took < 4, f"took {took:.2f}s"
    finally:
        os.kill(daemon, signal.SIGKILL)


@pytest.mark.asyncio
async def test_attach_and_disconnect_do_not_disturb_the_run(
    stub: crontrio_pb2_grpc.ExecutorStub, executor: Executor, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    request = shell(f"echo before; while [ ! -e {go} ]; do sleep 0.05; done; echo after")
    first = stub.Run(request, timeout=60)
    first_events: list[pb.RunEvent] = []
    await read_until(first, lambda out: b"before" in out, first_events)
    first.cancel()  # the caller goes away; the run must go on

    async with executor.channel() as channel:
        second = crontrio_pb2_grpc.ExecutorStub(channel).Run(request, timeout=60)
        events: list[pb.RunEvent] = []
        await read_until(second, lambda out: b"before" in out, events)
        assert events[0].started.pid == first_events[0].started.pid  # attached, not restarted
        listed = await stub.ListResults(pb.ListResultsRequest(run_ids=[request.run_id]))
        assert list(listed.running_run_ids) == [request.run_id] and not listed.results
        status = await stub.Status(pb.ExecutorStatusRequest())
        assert status.running >= 1
        go.touch()
        events += await read_rest(second)
    finished = events[-1].finished
    assert finished.status == "succeeded" and finished.output_tail == b"before\nafter\n"
    listed = await stub.ListResults(pb.ListResultsRequest(run_ids=[request.run_id]))
    assert list(listed.results) == [finished] and not listed.running_run_ids


# ---------------------------------------------------------------- HTTP tasks


@pytest.mark.asyncio
async def test_http_200_succeeds(stub: crontrio_pb2_grpc.ExecutorStub, http_base: str) -> None:
    s = await run(stub, http(f"{http_base}/ok"))
    assert s.started.pid == 0 and s.finished.pid == 0
    assert s.finished.status == "succeeded" and s.finished.exit_code == 200
    assert s.finished.output_tail == b"HTTP 200 OK\nhello from the test server\n"


@pytest.mark.asyncio
async def test_http_post_sends_headers_and_body(stub: crontrio_pb2_grpc.ExecutorStub, http_base: str) -> None:
    s = await run(stub, http(f"{http_base}/echo", method="POST", headers={"X-Test": "yes"}, body="payload"))
    assert s.finished.status == "succeeded", s.finished
    assert s.finished.output_tail == b"HTTP 200 OK\nPOST yes payload"


@pytest.mark.asyncio
async def test_http_500_fails(stub: crontrio_pb2_grpc.ExecutorStub, http_base: str) -> None:
    s = await run(stub, http(f"{http_base}/status/500"))
    assert s.finished.status == "failed" and s.finished.exit_code == 500
    assert "500" in s.finished.error
    assert s.finished.output_tail.startswith(b"HTTP 500 ")


@pytest.mark.asyncio
async def test_http_expected_statuses(stub: crontrio_pb2_grpc.ExecutorStub, http_base: str) -> None:
    s = await run(stub, http(f"{http_base}/status/500", expected_statuses=[500, 503]))
    assert s.finished.status == "succeeded" and s.finished.exit_code == 500
    s = await run(stub, http(f"{http_base}/status/201", expected_statuses=[200]))
    assert s.finished.status == "failed" and s.finished.exit_code == 201


@pytest.mark.asyncio
async def test_http_connection_refused(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    s = await run(stub, http(f"http://127.0.0.1:{free_port()}/"))
    assert s.finished.status == "failed" and s.finished.exit_code == 0
    assert s.finished.error.startswith("connection refused"), s.finished.error


@pytest.mark.asyncio
async def test_http_timeout(stub: crontrio_pb2_grpc.ExecutorStub, http_base: str) -> None:
    started = time.monotonic()
    s = await run(stub, http(f"{http_base}/slow", timeout_seconds=0.5))
    assert s.finished.status == "timeout" and s.finished.error == "timed out after 0.5s"
    assert time.monotonic() - started < 5


@pytest.mark.asyncio
async def test_http_kill_on_request(stub: crontrio_pb2_grpc.ExecutorStub, http_base: str) -> None:
    request = http(f"{http_base}/slow", timeout_seconds=30)
    call = stub.Run(request, timeout=60)
    first = await call.read()
    assert first.HasField("started")
    assert (await stub.Kill(pb.KillRequest(run_id=request.run_id))).killed
    finished = (await read_rest(call))[-1].finished
    assert finished.status == "killed" and finished.exit_code == 0 and finished.error == "killed on request"


# ---------------------------------------------------------------- journal


@pytest.mark.asyncio
async def test_result_is_journaled_until_acked(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    s = await run(stub, shell("echo journal me"))
    run_id = s.finished.run_id
    listed = await stub.ListResults(pb.ListResultsRequest(run_ids=[run_id]))
    assert list(listed.results) == [s.finished]
    everything = await stub.ListResults(pb.ListResultsRequest())
    assert run_id in {r.run_id for r in everything.results}
    before = (await stub.Status(pb.ExecutorStatusRequest())).unacknowledged
    assert (await stub.Ack(pb.AckRequest(run_ids=[run_id, "never-ran"]))).acknowledged == 1
    assert not (await stub.ListResults(pb.ListResultsRequest(run_ids=[run_id]))).results
    assert (await stub.Status(pb.ExecutorStatusRequest())).unacknowledged == before - 1
    assert (await stub.Ack(pb.AckRequest(run_ids=[run_id]))).acknowledged == 0


@pytest.mark.asyncio
async def test_run_is_replayed_not_rerun(stub: crontrio_pb2_grpc.ExecutorStub, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    request = shell(f"echo once >> {marker}; echo done")
    first = await run(stub, request)
    again = await run(stub, request)
    assert again.kinds == ["finished"]
    assert again.finished == first.finished
    assert marker.read_text() == "once\n"


@pytest.mark.asyncio
async def test_status(stub: crontrio_pb2_grpc.ExecutorStub, executor: Executor) -> None:
    status = await stub.Status(pb.ExecutorStatusRequest())
    assert status.address == executor.address and status.group == "default" and status.version == "0.1.0"
    assert status.host and 0 < status.started_ms <= time.time() * 1000


@pytest.mark.asyncio
async def test_restart_keeps_unacked_results_and_kills_past_grace(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    quick = shell(f"echo once >> {marker}")
    slow = shell("sleep 300 & echo $!; echo ready; wait")
    first = start_executor(tmp_path / "a", shutdown_grace_seconds="0.5")
    try:
        async with first.channel() as channel:
            stub = crontrio_pb2_grpc.ExecutorStub(channel)
            await run(stub, quick)
            call = stub.Run(slow, timeout=60)
            seen: list[pb.RunEvent] = []
            output = await read_until(call, lambda out: b"ready" in out, seen)
            code, took = await asyncio.to_thread(first.stop)
            assert code == 0 and took < 0.5 + KILL_GRACE + 4, (code, took)
            rest = await read_rest(call)
        assert rest[-1].finished.status == "killed" and "shutting down" in rest[-1].finished.error
        assert await wait_until(lambda: all_dead(pids_in(output)), 5, "the slow run's children to die", interval=0.05)
    finally:
        first.proc.kill()

    second = start_executor(tmp_path / "b", journal=first.journal)
    try:
        async with second.channel() as channel:
            stub = crontrio_pb2_grpc.ExecutorStub(channel)
            listed = await stub.ListResults(pb.ListResultsRequest())
            statuses = {r.run_id: r.status for r in listed.results}
            assert statuses == {quick.run_id: "succeeded", slow.run_id: "killed"}
            replay = await run(stub, quick)
            assert replay.finished.status == "succeeded" and replay.finished.executor == first.address
            assert marker.read_text() == "once\n"
            assert (await stub.Status(pb.ExecutorStatusRequest())).unacknowledged == 2
    finally:
        code, _ = second.stop()
    assert code == 0


@pytest.mark.asyncio
async def test_run_interrupted_by_executor_crash_is_lost_not_rerun(tmp_path: Path) -> None:
    marker, child = tmp_path / "ran", tmp_path / "child"
    # The background sleep is a member of the run's process group that is not
    # the shell itself.
    request = shell(f"sleep 30 & echo $! > {child}; echo ran >> {marker}; wait")
    first, started = await start_then_crash(tmp_path / "a", request, marker)
    sleep_pid = int(child.read_text())
    try:
        assert pid_alive(started.pid) and pid_alive(sleep_pid), "the run should outlive its executor"
        second = start_executor(tmp_path / "b", journal=first.journal)
        try:
            async with second.channel() as channel:
                stub = crontrio_pb2_grpc.ExecutorStub(channel)
                again = await run(stub, request)
                assert again.kinds == ["finished"], again.kinds  # replayed, not started again
                lost = again.finished
                assert lost.status == "lost" and lost.exit_code == 0, lost
                assert lost.error.startswith("executor restarted during the run (previous process died)"), lost.error
                assert f"process group {started.pid} was still running and was killed" in lost.error, lost.error
                assert (lost.pid, lost.host, lost.executor, lost.started_ms) == (
                    started.pid,
                    started.host,
                    first.address,
                    started.started_ms,
                )
                assert started.started_ms <= lost.finished_ms <= time.time() * 1000
                assert lines(marker) == ["ran"]
                listed = await stub.ListResults(pb.ListResultsRequest())
                assert list(listed.results) == [lost] and not listed.running_run_ids
                assert (await stub.Status(pb.ExecutorStatusRequest())).unacknowledged == 1
                assert await wait_until(lambda: all_dead([started.pid, sleep_pid]), 5, "the orphaned group to die", interval=0.05)
                assert f"run {request.run_id} (test-job attempt 1" in second.proc.log_text()
                # Once acknowledged, it is refused (the acknowledgement is journaled too).
                assert (await stub.Ack(pb.AckRequest(run_ids=[request.run_id]))).acknowledged == 1
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await run(stub, request)
                assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert lines(marker) == ["ran"]
        finally:
            code, _ = second.stop()
        assert code == 0
    finally:
        for pid in (started.pid, sleep_pid):
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.asyncio
async def test_orphan_not_provably_the_runs_is_left_alone(tmp_path: Path) -> None:
    # After the exec, the run's pid (= its group id) is a process without the
    # run's CRONTRIO_RUN_ID: what a reused pid looks like to the executor.
    marker = tmp_path / "ran"
    request = shell(f"echo ran >> {marker}; exec env -u CRONTRIO_RUN_ID sleep 30")
    first, started = await start_then_crash(tmp_path / "a", request, marker)
    pid = started.pid
    try:
        wait_for(lambda: Path(f"/proc/{pid}/comm").read_text().strip() == "sleep", 10, "the exec")
        second = start_executor(tmp_path / "b", journal=first.journal)
        try:
            async with second.channel() as channel:
                lost = (await run(crontrio_pb2_grpc.ExecutorStub(channel), request)).finished
            assert lost.status == "lost", lost
            assert f"process group {pid} is alive but could not be verified as this run's" in lost.error, lost.error
            assert "left alone" in lost.error
            assert pid_alive(pid)
            assert lines(marker) == ["ran"]
        finally:
            second.stop()
    finally:
        if pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)


@pytest.mark.asyncio
async def test_acknowledged_run_is_refused_not_rerun(stub: crontrio_pb2_grpc.ExecutorStub, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    request = shell(f"echo once >> {marker}")
    assert (await run(stub, request)).finished.status == "succeeded"
    assert (await stub.Ack(pb.AckRequest(run_ids=[request.run_id]))).acknowledged == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await run(stub, request)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details() == f"run {request.run_id} already finished and was acknowledged"
    assert lines(marker) == ["once"]
    assert not (await stub.ListResults(pb.ListResultsRequest(run_ids=[request.run_id]))).results
    # Acknowledging an id that never ran here does not block it.
    unknown = shell(f"echo other >> {marker}")
    assert (await stub.Ack(pb.AckRequest(run_ids=[unknown.run_id]))).acknowledged == 0
    assert (await run(stub, unknown)).finished.status == "succeeded"
    assert lines(marker) == ["once", "other"]


@pytest.mark.asyncio
async def test_sigterm_drains_running_runs(tmp_path: Path) -> None:
    go = tmp_path / "go"
    ex = start_executor(tmp_path / "ex")
    try:
        async with ex.channel() as channel:
            stub = crontrio_pb2_grpc.ExecutorStub(channel)
            request = shell(f"echo working; while [ ! -e {go} ]; do sleep 0.05; done; echo finished")
            call = stub.Run(request, timeout=60)
            await read_until(call, lambda out: b"working" in out, [])
            ex.proc.proc.send_signal(signal.SIGTERM)

            async def not_serving() -> bool:
                return await health(ex.address) == health_pb2.HealthCheckResponse.NOT_SERVING

            await wait_until(not_serving, 10.0, "health to flip to NOT_SERVING", interval=0.05)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await run(stub, shell("echo too late"))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            # Still attachable while draining.
            listed = await stub.ListResults(pb.ListResultsRequest())
            assert list(listed.running_run_ids) == [request.run_id]
            go.touch()
            rest = await read_rest(call)
        finished = rest[-1].finished
        assert finished.status == "succeeded" and finished.output_tail == b"working\nfinished\n"
        assert await asyncio.to_thread(ex.proc.proc.wait, 10) == 0
    finally:
        ex.proc.kill()
