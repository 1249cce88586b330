"""Executor.Session against a real executor process, through the
dispatcher's ExecutorSession: many runs on one stream, refusals, acks, and a
stream that breaks while its runs go on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from crontrio.common.clock import now_ms
from crontrio.dispatcher.executor_session import ExecutorSession, SessionBrokenError
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc
from testing_support.executor import Executor, lines, run, running_executor, shell, start_executor
from testing_support.services import wait_until


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Executor]:
    yield from running_executor(tmp_path_factory.mktemp("session-executor"))


@pytest_asyncio.fixture
async def session(stub: crontrio_pb2_grpc.ExecutorStub, executor: Executor) -> AsyncIterator[ExecutorSession]:
    s = ExecutorSession(stub, executor.address)
    yield s
    s.close()


async def events_of(session: ExecutorSession, request: pb.RunRequest) -> list[pb.SessionEvent]:
    return [event async for event in session.run(request)]


@pytest.mark.asyncio
async def test_many_runs_on_one_stream_each_get_their_own_events(session: ExecutorSession) -> None:
    requests = [shell(f"echo run-{i}") for i in range(200)]
    outcomes = await asyncio.wait_for(asyncio.gather(*(events_of(session, r) for r in requests)), 60)
    for i, (request, events) in enumerate(zip(requests, outcomes, strict=True)):
        assert [e.WhichOneof("event") for e in events] == ["started", "finished"], request.run_id
        assert events[0].started.run_id == request.run_id
        finished = events[1].finished
        assert (finished.run_id, finished.status, finished.output_tail) == (request.run_id, "succeeded", f"run-{i}\n".encode())


@pytest.mark.asyncio
async def test_a_bad_request_is_refused_naming_the_field(session: ExecutorSession) -> None:
    request = shell("true")
    request.ClearField("shell")
    (event,) = await events_of(session, request)
    assert event.refused.run_id == request.run_id
    assert event.refused.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "task" in event.refused.message
    # The session survives a refusal.
    assert (await events_of(session, shell("true")))[-1].finished.status == "succeeded"


@pytest.mark.asyncio
async def test_ack_on_the_session_drops_the_result_and_a_rerun_is_refused(
    session: ExecutorSession, stub: crontrio_pb2_grpc.ExecutorStub, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    request = shell(f"echo once >> {marker}")
    assert (await events_of(session, request))[-1].finished.status == "succeeded"
    assert (await stub.ListResults(pb.ListResultsRequest(run_ids=[request.run_id]))).results
    assert session.ack(request.run_id)

    async def dropped() -> bool:
        return not (await stub.ListResults(pb.ListResultsRequest(run_ids=[request.run_id]))).results

    await wait_until(dropped, 10, "the ack sent on the session to reach the journal")
    (event,) = await events_of(session, request)
    assert event.refused.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert lines(marker) == ["once"]


@pytest.mark.asyncio
async def test_a_broken_stream_leaves_the_run_going_and_run_collects_it(
    session: ExecutorSession, stub: crontrio_pb2_grpc.ExecutorStub, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    request = shell(f"echo once >> {marker}; sleep 1; echo done")
    events = session.run(request)
    first = await anext(events)
    assert first.WhichOneof("event") == "started"
    session.close()  # as when the dispatcher's connection drops
    with pytest.raises(SessionBrokenError):
        await anext(events)
    # What the dispatcher then does: Run with the same id attaches to the run.
    attached = await run(stub, request)
    assert attached.finished.status == "succeeded"
    assert attached.finished.output_tail == b"done\n"
    assert lines(marker) == ["once"]


@pytest.mark.asyncio
async def test_a_new_stream_opens_after_one_broke(session: ExecutorSession) -> None:
    assert (await events_of(session, shell("true")))[-1].finished.status == "succeeded"
    session.close()
    assert not session.ack("1-1-1"), "no session is open: the caller must use Ack"
    events = await events_of(session, shell("echo again"))
    assert events[-1].finished.output_tail == b"again\n"


@pytest.mark.asyncio
async def test_a_session_to_an_executor_that_is_gone_breaks_its_runs(tmp_path: Path) -> None:
    ex = start_executor(tmp_path / "gone")
    address = ex.address
    ex.stop()
    async with grpc.aio.insecure_channel(address) as channel:
        session = ExecutorSession(crontrio_pb2_grpc.ExecutorStub(channel), address)
        with pytest.raises(SessionBrokenError):
            await asyncio.wait_for(events_of(session, shell("true")), 30)
        session.close()


@pytest.mark.asyncio
async def test_a_run_sent_ahead_starts_at_its_scheduled_time(session: ExecutorSession) -> None:
    request = shell("true", scheduled_ms=now_ms() + 700)
    events = await events_of(session, request)
    assert events[0].started.started_ms >= request.scheduled_ms
    assert events[-1].finished.status == "succeeded"


@pytest.mark.asyncio
async def test_run_also_holds_a_run_sent_ahead(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    request = shell("true", scheduled_ms=now_ms() + 700)
    assert (await run(stub, request)).started.started_ms >= request.scheduled_ms


@pytest.mark.asyncio
async def test_a_run_far_ahead_of_the_executors_clock_is_not_held(session: ExecutorSession) -> None:
    # Further ahead than any dispatcher sends: the clocks disagree; start now.
    request = shell("true", scheduled_ms=now_ms() + 3_600_000)
    events = await asyncio.wait_for(events_of(session, request), 30)
    assert events[0].started.started_ms < request.scheduled_ms - 3_000_000


async def held(stub: crontrio_pb2_grpc.ExecutorStub, request: pb.RunRequest) -> None:
    """Wait until the executor holds `request` (accepted, not started)."""

    async def listed() -> bool:
        reply = await stub.ListResults(pb.ListResultsRequest(run_ids=[request.run_id]))
        return request.run_id in reply.running_run_ids

    await wait_until(listed, 10, f"the executor to accept run {request.run_id}")


@pytest.mark.asyncio
async def test_a_held_run_is_known_before_it_starts(session: ExecutorSession, stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    # Listed as running while held: the monitor and a peer dispatcher asking
    # "does any executor have this run?" must hear yes, or they would run it again.
    request = shell("true", scheduled_ms=now_ms() + 1500)
    events = asyncio.ensure_future(events_of(session, request))
    await held(stub, request)
    assert now_ms() < request.scheduled_ms, "the run was not listed before its scheduled time"
    assert (await asyncio.wait_for(events, 30))[-1].finished.status == "succeeded"


@pytest.mark.asyncio
async def test_killing_a_held_run_ends_it_killed_and_nothing_runs(
    session: ExecutorSession, stub: crontrio_pb2_grpc.ExecutorStub, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    request = shell(f"echo ran >> {marker}", scheduled_ms=now_ms() + 2000)
    events = asyncio.ensure_future(events_of(session, request))
    await held(stub, request)
    assert (await stub.Kill(pb.KillRequest(run_id=request.run_id))).killed
    finished = (await asyncio.wait_for(events, 30))[-1].finished
    assert finished.status == "killed"
    assert "before its scheduled start" in finished.error
    assert finished.started_ms == 0
    # Ended at once, not at its scheduled time; and the command never ran.
    assert finished.finished_ms < request.scheduled_ms
    # Held runs start on timers in scheduled order: once a run held for just
    # after it has run, the killed one would have run too, had it been going to.
    later = shell(f"echo later >> {marker}.later", scheduled_ms=request.scheduled_ms + 100)
    assert (await asyncio.wait_for(events_of(session, later), 30))[-1].finished.status == "succeeded"
    assert lines(Path(f"{marker}.later")) == ["later"]
    assert not marker.exists()
    # Its result is journaled like any other: a Run for it replays it.
    assert (await run(stub, request)).finished.status == "killed"


@pytest.mark.asyncio
async def test_cancelling_a_held_run_ends_it_skipped_with_the_reason(
    session: ExecutorSession, stub: crontrio_pb2_grpc.ExecutorStub
) -> None:
    request = shell("true", scheduled_ms=now_ms() + 2000)
    events = asyncio.ensure_future(events_of(session, request))
    await held(stub, request)
    reply = await stub.Kill(pb.KillRequest(run_id=request.run_id, before_start_only=True, reason="job paused"))
    assert reply.killed
    finished = (await asyncio.wait_for(events, 30))[-1].finished
    assert (finished.status, finished.exit_code) == ("skipped", 0)
    assert finished.error.startswith("job paused")


@pytest.mark.asyncio
async def test_cancel_before_start_leaves_a_started_run_alone(
    session: ExecutorSession, stub: crontrio_pb2_grpc.ExecutorStub
) -> None:
    request = shell("sleep 0.5; echo done")
    events = session.run(request)
    assert (await anext(events)).WhichOneof("event") == "started"
    reply = await stub.Kill(pb.KillRequest(run_id=request.run_id, before_start_only=True, reason="job paused"))
    assert not reply.killed
    rest = [e async for e in events]
    assert rest[-1].finished.status == "succeeded"
    assert rest[-1].finished.output_tail == b"done\n"


def replacement(request: pb.RunRequest, command: str) -> pb.RunRequest:
    """`request` as its job is after an edit: same run, another command."""
    new = pb.RunRequest()
    new.CopyFrom(request)
    new.shell.command = command
    return new


@pytest.mark.asyncio
async def test_replacing_a_held_run_runs_the_new_request(
    session: ExecutorSession, stub: crontrio_pb2_grpc.ExecutorStub, tmp_path: Path
) -> None:
    request = shell("echo old", scheduled_ms=now_ms() + 2000)
    events = asyncio.ensure_future(events_of(session, request))
    await held(stub, request)
    new = replacement(request, "echo new")
    new.keywords.append("new")
    reply = await stub.Kill(pb.KillRequest(run_id=request.run_id, before_start_only=True, replace_with=new))
    assert reply.killed
    started, finished = [e for e in await asyncio.wait_for(events, 30) if e.WhichOneof("event") in ("started", "finished")]
    assert started.started.started_ms >= request.scheduled_ms, "the replacement made it start early"
    assert (finished.finished.status, finished.finished.output_tail) == ("succeeded", b"new\n")
    # The keyword scan is the new request's too.
    assert finished.finished.matched_keyword == "new"
    # A Run for it (the per-run fallback) replays that very result.
    assert (await run(stub, request)).finished.output_tail == b"new\n"


@pytest.mark.asyncio
async def test_a_replacement_must_be_valid_and_the_same_run(
    session: ExecutorSession, stub: crontrio_pb2_grpc.ExecutorStub
) -> None:
    request = shell("echo old", scheduled_ms=now_ms() + 2000)
    events = asyncio.ensure_future(events_of(session, request))
    await held(stub, request)
    bad = replacement(request, "")
    other_instant = replacement(request, "echo new")
    other_instant.scheduled_ms += 1000
    other_run = replacement(request, "echo new")
    other_run.run_id += "x"
    cases = ((bad, "shell.command"), (other_instant, "replace_with.scheduled_ms"), (other_run, "replace_with.run_id"))
    for wrong, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Kill(pb.KillRequest(run_id=request.run_id, before_start_only=True, replace_with=wrong))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in (caught.value.details() or ""), caught.value.details()
    # Refused replacements changed nothing.
    assert (await asyncio.wait_for(events, 30))[-1].finished.output_tail == b"old\n"


@pytest.mark.asyncio
async def test_replacing_a_started_run_changes_nothing(session: ExecutorSession, stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    request = shell("sleep 0.5; echo old")
    events = session.run(request)
    assert (await anext(events)).WhichOneof("event") == "started"
    new = replacement(request, "echo new")
    reply = await stub.Kill(pb.KillRequest(run_id=request.run_id, before_start_only=True, replace_with=new))
    assert not reply.killed
    rest = [e async for e in events]
    assert (rest[-1].finished.status, rest[-1].finished.output_tail) == ("succeeded", b"old\n")
