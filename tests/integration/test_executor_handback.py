"""A stopping executor hands back what it has not started (a real executor
process): held runs end `not_started` without running, new runs are refused
with the crontrio-not-started marker, and a handed-back run sent to it again
after a restart runs there, once."""

from __future__ import annotations

import signal
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc
from testing_support.executor import health, lines, read_rest, read_until, run, shell, start_executor
from testing_support.services import wait_until


@pytest.mark.asyncio
async def test_sigterm_hands_back_held_runs_and_marks_refusals(tmp_path: Path) -> None:
    go, marker = tmp_path / "go", tmp_path / "ran"
    ex = start_executor(tmp_path / "ex")
    try:
        async with ex.channel() as channel:
            stub = crontrio_pb2_grpc.ExecutorStub(channel)
            # A running run keeps the executor draining while we look.
            busy = stub.Run(shell(f"echo working; while [ ! -e {go} ]; do sleep 0.05; done"), timeout=60)
            await read_until(busy, lambda out: b"working" in out, [])
            held = shell(f"echo held >> {marker}", scheduled_ms=now_ms() + 4000)  # sent ahead: held for 4 s
            held_call = stub.Run(held, timeout=60)

            async def is_held() -> bool:
                listed = await stub.ListResults(pb.ListResultsRequest(run_ids=[held.run_id]))
                return held.run_id in listed.running_run_ids

            await wait_until(is_held, 10.0, "the run sent ahead to be held", interval=0.05)
            ex.proc.proc.send_signal(signal.SIGTERM)
            events = await read_rest(held_call)
            finished = events[-1].finished
            assert finished.status == status.NOT_STARTED, finished
            assert "shutting down" in finished.error and "never ran" in finished.error

            async def not_serving() -> bool:
                return await health(ex.address) == health_pb2.HealthCheckResponse.NOT_SERVING

            await wait_until(not_serving, 10.0, "health to flip to NOT_SERVING", interval=0.05)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await run(stub, shell("echo too late"))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert (status.NOT_STARTED_METADATA, "draining") in tuple(err.value.trailing_metadata() or ())
            go.touch()
            await read_rest(busy)
        assert ex.proc.proc.wait(10) == 0
        assert lines(marker) == []  # the held run never ran

        # Its dispatcher had nowhere else to send it: the restarted executor runs it, once.
        again = start_executor(tmp_path / "ex2", journal=ex.journal, secret=ex.secret)
        try:
            async with again.channel() as channel:
                stub = crontrio_pb2_grpc.ExecutorStub(channel)
                held.scheduled_ms = now_ms()
                result = await run(stub, held)
                assert result.finished.status == status.SUCCEEDED, result.finished
                replay = await run(stub, held)  # the same request again: replayed, not rerun
                assert replay.kinds == ["finished"] and replay.finished.status == status.SUCCEEDED
            assert lines(marker) == ["held"]
        finally:
            again.stop()
    finally:
        ex.proc.kill()
