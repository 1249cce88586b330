"""Executor.Attach against a real `python -m crontrio.executor`: it follows a run and never starts one."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc
from testing_support.executor import (
    Executor,
    lines,
    read_rest,
    read_until,
    rss_kib,
    run,
    running_executor,
    shell,
    start_executor,
    start_then_crash,
)
from testing_support.services import pid_alive

# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Executor]:
    yield from running_executor(tmp_path_factory.mktemp("executor-attach"))


# ---------------------------------------------------------------- helpers


def gated(go: Path) -> str:
    """A command that prints a line, waits for ``go`` to exist, prints another."""
    return f"echo first; while [ ! -e {go} ]; do sleep 0.05; done; echo second"


async def catch_up(call: Any) -> tuple[pb.RunStarted, bytes]:
    """The first two events of an Attach to a run that already printed
    "first": RunStarted, then the output so far as one chunk."""
    first = await asyncio.wait_for(call.read(), 20)
    assert first is not grpc.aio.EOF and first.HasField("started"), first
    second = await asyncio.wait_for(call.read(), 20)
    assert second is not grpc.aio.EOF and second.HasField("output"), second
    return first.started, second.output.data


def live_then_finished(events: list[pb.RunEvent]) -> tuple[bytes, pb.RunFinished]:
    """The live output and the RunFinished ending a stream's remaining events."""
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "finished" and set(kinds[:-1]) <= {"output"}, kinds
    return b"".join(e.output.data for e in events[:-1]), events[-1].finished


async def attach_error(stub: crontrio_pb2_grpc.ExecutorStub, run_id: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for event in stub.Attach(pb.AttachRequest(run_id=run_id), timeout=20):
            raise AssertionError(f"Attach({run_id!r}) streamed {event}")
    return err.value


# ---------------------------------------------------------------- a running run


@pytest.mark.asyncio
async def test_attach_to_running_run_gets_catch_up_live_output_and_finish(
    stub: crontrio_pb2_grpc.ExecutorStub, executor: Executor, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    request = shell(gated(go))
    runner = stub.Run(request, timeout=60)
    run_events: list[pb.RunEvent] = []
    await read_until(runner, lambda out: b"first" in out, run_events)

    async with executor.channel() as channel:
        follower = crontrio_pb2_grpc.ExecutorStub(channel).Attach(pb.AttachRequest(run_id=request.run_id), timeout=60)
        started, so_far = await catch_up(follower)
        assert started == run_events[0].started  # the same run, not a new one
        assert so_far == b"first\n"
        listed = await stub.ListResults(pb.ListResultsRequest(run_ids=[request.run_id]))
        assert list(listed.running_run_ids) == [request.run_id] and not listed.results
        go.touch()
        live, finished = live_then_finished(await read_rest(follower))
    assert live == b"second\n"
    assert finished.status == "succeeded" and finished.output_tail == b"first\nsecond\n"
    assert finished.pid == started.pid
    assert (await read_rest(runner))[-1].finished == finished
    listed = await stub.ListResults(pb.ListResultsRequest(run_ids=[request.run_id]))
    assert list(listed.results) == [finished] and not listed.running_run_ids


@pytest.mark.asyncio
async def test_concurrent_attachers_each_get_the_full_stream(
    stub: crontrio_pb2_grpc.ExecutorStub, executor: Executor, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    request = shell(gated(go))
    runner = stub.Run(request, timeout=60)
    await read_until(runner, lambda out: b"first" in out, [])
    runner.cancel()  # the caller that started it goes away; the run goes on

    async with (
        executor.channel() as a_channel,
        executor.channel() as b_channel,
        executor.channel() as c_channel,
    ):
        attach = pb.AttachRequest(run_id=request.run_id)
        a = crontrio_pb2_grpc.ExecutorStub(a_channel).Attach(attach, timeout=60)
        b = crontrio_pb2_grpc.ExecutorStub(b_channel).Attach(attach, timeout=60)
        quitter = crontrio_pb2_grpc.ExecutorStub(c_channel).Attach(attach, timeout=60)
        a_started, a_so_far = await catch_up(a)
        b_started, b_so_far = await catch_up(b)
        await catch_up(quitter)
        quitter.cancel()  # an attacher disconnecting does not disturb the run or the others
        assert a_started == b_started and a_so_far == b_so_far == b"first\n"
        go.touch()
        (a_live, a_finished), (b_live, b_finished) = [
            live_then_finished(events) for events in await asyncio.gather(read_rest(a), read_rest(b))
        ]
    assert a_live == b_live == b"second\n"
    assert a_finished == b_finished
    assert a_finished.status == "succeeded" and a_finished.output_tail == b"first\nsecond\n"


@pytest.mark.asyncio
async def test_slow_attacher_is_bounded(stub: crontrio_pb2_grpc.ExecutorStub, executor: Executor, tmp_path: Path) -> None:
    go = tmp_path / "go"
    limit = 4096
    request = shell(
        f"echo ready; while [ ! -e {go} ]; do sleep 0.05; done; yes 0123456789abcdef | head -c 52428800; echo; echo END",
        output_limit_bytes=limit,
    )
    runner = stub.Run(request, timeout=60)
    await read_until(runner, lambda out: b"ready" in out, [])
    async with executor.channel() as slow_channel:
        slow = crontrio_pb2_grpc.ExecutorStub(slow_channel).Attach(pb.AttachRequest(run_id=request.run_id), timeout=60)
        await catch_up(slow)
        go.touch()
        # The slow attacher reads nothing more until the run is over.
        finished = (await read_rest(runner))[-1].finished
        slow_live, slow_finished = live_then_finished(await read_rest(slow))
    assert finished.status == "succeeded" and len(finished.output_tail) == limit and finished.output_truncated
    assert slow_finished == finished
    assert len(slow_live) < 20 * 1024 * 1024, f"a slow attacher was sent {len(slow_live)} bytes"
    assert rss_kib(executor.pid, "VmHWM") < 200 * 1024, f"executor peak RSS {rss_kib(executor.pid, 'VmHWM')} KiB"


# ---------------------------------------------------------------- journaled results


@pytest.mark.asyncio
async def test_attach_to_finished_unacked_run_replays_only_its_result(
    stub: crontrio_pb2_grpc.ExecutorStub, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    done = await run(stub, shell(f"echo once >> {marker}; echo done"))
    events = [e async for e in stub.Attach(pb.AttachRequest(run_id=done.finished.run_id), timeout=20)]
    assert [e.WhichOneof("event") for e in events] == ["finished"]
    assert events[0].finished == done.finished
    assert lines(marker) == ["once"]
    assert list((await stub.ListResults(pb.ListResultsRequest(run_ids=[done.finished.run_id]))).results) == [done.finished]


@pytest.mark.asyncio
async def test_attach_to_acknowledged_run_is_not_found(stub: crontrio_pb2_grpc.ExecutorStub, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    request = shell(f"echo once >> {marker}")
    assert (await run(stub, request)).finished.status == "succeeded"
    assert (await stub.Ack(pb.AckRequest(run_ids=[request.run_id]))).acknowledged == 1
    err = await attach_error(stub, request.run_id)
    assert err.code() == grpc.StatusCode.NOT_FOUND and "acknowledged" in str(err.details())
    assert lines(marker) == ["once"]
    listed = await stub.ListResults(pb.ListResultsRequest(run_ids=[request.run_id]))
    assert not listed.results and not listed.running_run_ids


@pytest.mark.asyncio
async def test_attach_to_unknown_run_is_not_found_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "created"
    # What a Run with this id would do; Attach has no command, only the id.
    request = shell(f"touch {marker}")
    ex = start_executor(tmp_path / "ex")  # its own executor: nothing else in its journal
    try:
        async with ex.channel() as channel:
            stub = crontrio_pb2_grpc.ExecutorStub(channel)
            err = await attach_error(stub, request.run_id)
            assert err.code() == grpc.StatusCode.NOT_FOUND, err
            assert request.run_id in str(err.details())
            listed = await stub.ListResults(pb.ListResultsRequest())
            assert not listed.results and not listed.running_run_ids
            status = await stub.Status(pb.ExecutorStatusRequest())
            assert status.running == 0 and status.unacknowledged == 0
            assert not marker.exists()
            # Attach left no trace: the id still runs normally, once.
            assert (await run(stub, request)).finished.status == "succeeded"
            assert marker.exists()
            err = await attach_error(stub, "")
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "run_id" in str(err.details())
    finally:
        code, _ = ex.stop()
    assert code == 0


@pytest.mark.asyncio
async def test_attach_to_crash_recovered_lost_run_replays_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    request = shell(f"echo ran >> {marker}; exec sleep 30")
    first, started = await start_then_crash(tmp_path / "a", request, marker)
    try:
        second = start_executor(tmp_path / "b", journal=first.journal)
        try:
            async with second.channel() as channel:
                stub = crontrio_pb2_grpc.ExecutorStub(channel)
                events = [e async for e in stub.Attach(pb.AttachRequest(run_id=request.run_id), timeout=20)]
                assert [e.WhichOneof("event") for e in events] == ["finished"]
                lost = events[0].finished
                assert lost.status == "lost" and lost.pid == started.pid and lost.executor == first.address, lost
                listed = await stub.ListResults(pb.ListResultsRequest())
                assert list(listed.results) == [lost] and not listed.running_run_ids
            assert lines(marker) == ["ran"]  # not run again
        finally:
            code, _ = second.stop()
        assert code == 0
    finally:
        if pid_alive(started.pid):
            os.killpg(started.pid, signal.SIGKILL)
