"""Executor.Session against a real executor process, through the
dispatcher's ExecutorSession: many runs on one stream, refusals, acks, and a
stream that breaks while its runs go on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

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


# -- batches ------------------------------------------------------------------


class RecordingStub:
    """The executor's stub, noting what kind of message each Session request was."""

    def __init__(self, stub: crontrio_pb2_grpc.ExecutorStub) -> None:
        self._stub = stub
        self.sent: list[str] = []

    def Session(self, requests: AsyncIterator[pb.SessionRequest], **kwargs: Any) -> Any:
        async def recorded() -> AsyncIterator[pb.SessionRequest]:
            async for message in requests:
                self.sent.append(message.WhichOneof("request") or "")
                yield message

        return self._stub.Session(recorded(), **kwargs)


@pytest_asyncio.fixture
async def recorded(
    stub: crontrio_pb2_grpc.ExecutorStub, executor: Executor
) -> AsyncIterator[tuple[ExecutorSession, RecordingStub]]:
    recording = RecordingStub(stub)
    s = ExecutorSession(cast(crontrio_pb2_grpc.ExecutorStub, recording), executor.address)
    yield s, recording
    s.close()


@pytest.mark.asyncio
async def test_runs_sent_together_go_as_one_batch_and_each_runs_exactly_once(
    recorded: tuple[ExecutorSession, RecordingStub], tmp_path: Path
) -> None:
    session, recording = recorded
    # Sent on a fresh stream (a burst right after the dispatcher started):
    # they wait for the executor's answer rather than going one by one.
    requests = [shell(f"echo once >> {tmp_path / str(i)}; echo run-{i}") for i in range(50)]
    outcomes = await asyncio.wait_for(asyncio.gather(*(events_of(session, r) for r in requests)), 60)
    assert recording.sent == ["run_batch"], "the 50 runs sent in one turn should go as one RunBatch"
    # And once the answer is known, the next turn's runs go as a batch at once.
    more = [shell(f"echo more-{i}") for i in range(5)]
    again = await asyncio.wait_for(asyncio.gather(*(events_of(session, r) for r in more)), 60)
    assert recording.sent == ["run_batch", "run_batch"]
    assert [events[-1].finished.output_tail for events in again] == [f"more-{i}\n".encode() for i in range(5)]
    for i, (request, events) in enumerate(zip(requests, outcomes, strict=True)):
        assert [e.WhichOneof("event") for e in events] == ["started", "finished"], request.run_id
        assert events[0].started.run_id == events[1].finished.run_id == request.run_id
        assert (events[1].finished.status, events[1].finished.output_tail) == ("succeeded", f"run-{i}\n".encode())
        assert lines(tmp_path / str(i)) == ["once"]


@pytest.mark.asyncio
async def test_refusals_inside_a_batch_refuse_only_their_own_run(
    recorded: tuple[ExecutorSession, RecordingStub], stub: crontrio_pb2_grpc.ExecutorStub
) -> None:
    session, recording = recorded
    acked = shell("true")
    assert (await run(stub, acked)).finished.status == "succeeded"
    assert (await stub.Ack(pb.AckRequest(run_ids=[acked.run_id]))).acknowledged == 1
    bad = shell("true")
    bad.ClearField("shell")
    good = [shell(f"echo good-{i}") for i in range(3)]
    requests = [good[0], bad, good[1], acked, good[2]]
    outcomes = await asyncio.wait_for(asyncio.gather(*(events_of(session, r) for r in requests)), 60)
    assert recording.sent[-1] == "run_batch"
    (bad_event,) = outcomes[1]
    assert (bad_event.refused.run_id, bad_event.refused.code) == (bad.run_id, grpc.StatusCode.INVALID_ARGUMENT.value[0])
    (acked_event,) = outcomes[3]
    assert (acked_event.refused.run_id, acked_event.refused.code) == (acked.run_id, grpc.StatusCode.FAILED_PRECONDITION.value[0])
    for i, events in enumerate(outcomes[::2]):
        assert [e.WhichOneof("event") for e in events] == ["started", "finished"]
        assert events[-1].finished.output_tail == f"good-{i}\n".encode()


@pytest.mark.asyncio
async def test_a_session_broken_mid_batch_leaves_each_run_going_and_run_collects_each_once(
    recorded: tuple[ExecutorSession, RecordingStub], stub: crontrio_pb2_grpc.ExecutorStub, tmp_path: Path
) -> None:
    session, recording = recorded
    held_ms = now_ms() + 1500
    # Some running, some held for their scheduled time when the stream breaks.
    requests = [
        shell(f"echo once >> {tmp_path / str(i)}; sleep 1; echo done-{i}", scheduled_ms=held_ms if i % 2 else 0)
        for i in range(10)
    ]
    streams = [session.run(r) for r in requests]
    # Each run is sent on its stream's first step: all in this turn, one batch.
    firsts = [asyncio.ensure_future(anext(s)) for s in streams]
    started = await asyncio.wait_for(asyncio.gather(*firsts[::2]), 30)
    assert [e.WhichOneof("event") for e in started] == ["started"] * 5
    for request in requests[1::2]:
        await held(stub, request)
    assert recording.sent[-1] == "run_batch"
    session.close()  # as when the dispatcher's connection drops
    for s in streams[::2]:
        with pytest.raises(SessionBrokenError):
            await anext(s)
    for waiting in firsts[1::2]:
        with pytest.raises(SessionBrokenError):
            await waiting
    # What the dispatcher then does for each: Run with the same id attaches.
    results = await asyncio.wait_for(asyncio.gather(*(run(stub, r) for r in requests)), 60)
    for i, (request, result) in enumerate(zip(requests, results, strict=True)):
        assert (result.finished.status, result.finished.output_tail) == ("succeeded", f"done-{i}\n".encode())
        if i % 2:
            assert result.started.started_ms >= request.scheduled_ms
        assert lines(tmp_path / str(i)) == ["once"]


@pytest.mark.asyncio
async def test_batches_too_large_for_one_message_are_cut_both_ways(recorded: tuple[ExecutorSession, RecordingStub]) -> None:
    # 80 runs of ~60 KB of request and ~250 KB of output each: 4.8 and 20 MB,
    # sent in one turn and finishing together. One message each way would
    # be over gRPC's limit (this test's channel takes the default 4 MiB); the
    # session must cut them, not break (a broken session raises here).
    session, recording = recorded
    padding = "x" * 60_000
    requests = [
        shell(f": {padding}; head -c 250000 /dev/zero | tr '\\0' 'y'; echo -n {i}", output_limit_bytes=300_000) for i in range(80)
    ]
    outcomes = await asyncio.wait_for(asyncio.gather(*(events_of(session, r) for r in requests)), 60)
    assert len(recording.sent) > 1 and set(recording.sent) <= {"run_batch", "run"}, recording.sent
    for i, events in enumerate(outcomes):
        tail = events[-1].finished.output_tail
        assert (events[-1].finished.status, len(tail), tail[-len(str(i)) :]) == (
            "succeeded",
            250_000 + len(str(i)),
            str(i).encode(),
        )


async def raw_session(
    stub: crontrio_pb2_grpc.ExecutorStub, message: pb.SessionRequest, expected: int
) -> tuple[dict[str, str], list[pb.SessionEvent]]:
    """Send one message on a bare Session; the initial metadata and the
    messages received until ``expected`` events (batched or not) arrived."""
    call = stub.Session(iter([message]), metadata=(("crontrio-session-batch", "1"),))
    metadata = dict(await call.initial_metadata())
    received: list[pb.SessionEvent] = []
    count = 0
    async for event in call:
        received.append(event)
        count += len(event.batch.events) if event.HasField("batch") else 1
        if count >= expected:
            break
    call.cancel()
    return metadata, received


def _bad(n: int) -> list[pb.RunRequest]:
    requests = [shell("true") for _ in range(n)]
    for request in requests:
        request.ClearField("shell")
    return requests


@pytest.mark.asyncio
async def test_the_executor_says_it_takes_batches_and_answers_a_batch_in_batches(
    stub: crontrio_pb2_grpc.ExecutorStub,
) -> None:
    requests = _bad(20)
    message = pb.SessionRequest(run_batch=pb.RunBatch(runs=requests))
    metadata, received = await asyncio.wait_for(raw_session(stub, message, len(requests)), 30)
    assert metadata.get("crontrio-session-batch") == "1"
    # Refused at once, all in the same turn of the executor's loop.
    assert len(received) < len(requests), [e.WhichOneof("event") for e in received]
    events = [e for m in received for e in (m.batch.events if m.HasField("batch") else [m])]
    assert sorted(e.refused.run_id for e in events) == sorted(r.run_id for r in requests)
    assert {e.refused.code for e in events} == {grpc.StatusCode.INVALID_ARGUMENT.value[0]}


@pytest.mark.asyncio
async def test_a_dispatcher_that_does_not_say_it_reads_batches_gets_none(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    # An older dispatcher does not know EventBatch: it would lose the events in one.
    requests = _bad(20)
    call = stub.Session(iter([pb.SessionRequest(run=r) for r in requests]))
    received = []
    async for event in call:
        received.append(event)
        if len(received) == len(requests):
            break
    call.cancel()
    assert [e.WhichOneof("event") for e in received] == ["refused"] * len(requests)


class _OlderExecutor(crontrio_pb2_grpc.ExecutorServicer):
    """An executor from before batches: no word in its initial metadata, one
    event per message, and a RunBatch is nothing it knows."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def Session(self, request_iterator: Any, context: Any) -> AsyncIterator[pb.SessionEvent]:
        async for message in request_iterator:
            self.received.append(message.WhichOneof("request") or "")
            if message.HasField("run"):
                run_id = message.run.run_id
                yield pb.SessionEvent(started=pb.RunStarted(run_id=run_id, started_ms=now_ms()))
                yield pb.SessionEvent(finished=pb.RunFinished(run_id=run_id, status="succeeded"))


@pytest.mark.asyncio
async def test_a_dispatcher_sends_an_older_executor_one_run_per_message() -> None:
    older = _OlderExecutor()
    server = grpc.aio.server()
    crontrio_pb2_grpc.add_ExecutorServicer_to_server(older, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            session = ExecutorSession(crontrio_pb2_grpc.ExecutorStub(channel), f"127.0.0.1:{port}")
            requests = [shell("true") for _ in range(5)]
            outcomes = await asyncio.wait_for(asyncio.gather(*(events_of(session, r) for r in requests)), 10)
            # And later runs on the same stream, once it is known to take no batch.
            outcomes += await asyncio.wait_for(asyncio.gather(*(events_of(session, r) for r in requests[:3])), 10)
            session.close()
    finally:
        await server.stop(None)
    assert [events[-1].finished.status for events in outcomes] == ["succeeded"] * 8
    assert older.received == ["run"] * 8


@pytest.mark.asyncio
async def test_a_half_closed_stream_ends_once_every_run_sent_on_it_has_reported(
    stub: crontrio_pb2_grpc.ExecutorStub,
) -> None:
    # The dispatcher stops sending (half-close) while its runs still go:
    # the stream must carry their ends and only then end by itself. The same
    # run sent twice is attached to, not started again, and reports to both.
    slow = shell("sleep 0.5; echo slow")
    quick = shell("echo quick")
    messages = [pb.SessionRequest(run=slow), pb.SessionRequest(run=quick), pb.SessionRequest(run=slow)]

    async def read_to_the_end() -> list[pb.SessionEvent]:
        call = stub.Session(iter(messages))
        return [event async for event in call]

    received = await asyncio.wait_for(read_to_the_end(), 30)
    finished = [e.finished for e in received if e.HasField("finished")]
    assert sorted(f.run_id for f in finished) == sorted([slow.run_id, slow.run_id, quick.run_id])
    assert {f.run_id: f.output_tail for f in finished} == {slow.run_id: b"slow\n", quick.run_id: b"quick\n"}
    started = [e.started.run_id for e in received if e.HasField("started")]
    assert sorted(started) == sorted([slow.run_id, slow.run_id, quick.run_id])
    # Started once: both followers saw the same process.
    assert len({e.started.pid for e in received if e.HasField("started") and e.started.run_id == slow.run_id}) == 1
