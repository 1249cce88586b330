"""How ExecutorLink.run ends when it loses contact with an executor before
the run's start was seen: the run "did not start there" (the retry policy
may send it elsewhere) only with proof; an executor that cannot say whether
it has the run may be running it, so the run ends as possibly started
(never retried elsewhere, where it would run twice)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

from crontrio.common.clock import now_ms
from crontrio.dispatcher.executor_link import ExecutorLink, LinkEvent, Unreachable
from crontrio.protos import crontrio_pb2 as pb

ADDRESS = "10.0.0.7:5921"
REFUSED = (
    f"failed to connect to all addresses; last error: UNKNOWN: ipv4:{ADDRESS}: "
    "Failed to connect to remote host: Connection refused"
)
TIMED_OUT = f"failed to connect to all addresses; last error: UNAVAILABLE: ipv4:{ADDRESS}: Timeout occurred"
BROKE = "Socket closed"
DEADLINE = "Deadline Exceeded"


def error(code: grpc.StatusCode, details: str) -> AioRpcError:
    return AioRpcError(code, Metadata(), Metadata(), details)


class FakeExecutor:
    """Every Run call fails with `run_error`; ListResults fails with
    `list_error`, or answers that it knows nothing of the run."""

    def __init__(self, run_error: AioRpcError, list_error: AioRpcError | None) -> None:
        self.run_error = run_error
        self.list_error = list_error
        self.asked = 0

    async def Run(self, _request: pb.RunRequest) -> AsyncIterator[pb.RunEvent]:
        raise self.run_error
        yield pb.RunEvent()  # an async generator, as a streaming call is

    async def ListResults(self, _request: pb.ListResultsRequest, timeout: float = 0) -> pb.ListResultsReply:
        self.asked += 1
        if self.list_error is not None:
            raise self.list_error
        return pb.ListResultsReply()


class FakeClients:
    def __init__(self, executor: FakeExecutor) -> None:
        self.executor = executor

    def stub(self, _address: str) -> Any:
        return self.executor

    def session(self, _address: str) -> None:
        return None  # no Session: the link goes straight to Run


class GoneRegistry:
    """The executor has left the registry: the link stops reattaching at once."""

    def live(self) -> list[Any]:
        return []


async def last_event(executor: FakeExecutor, may_still_start: Callable[[], bool] = lambda: False) -> LinkEvent:
    link = ExecutorLink(GoneRegistry(), FakeClients(executor))  # type: ignore[arg-type]
    shell = pb.ShellTask(command="true")
    request = pb.RunRequest(run_id="7-1-1", job_id=7, scheduled_ms=now_ms() - 1_000, attempt=1, shell=shell)
    events = [event async for event in link.run(request, ADDRESS, lambda: False, may_still_start)]
    assert len(events) == 1, events
    return events[0]


@pytest.mark.asyncio
async def test_a_run_that_may_have_arrived_at_an_executor_too_slow_to_say_ends_as_possibly_started() -> None:
    executor = FakeExecutor(error(grpc.StatusCode.UNAVAILABLE, BROKE), error(grpc.StatusCode.DEADLINE_EXCEEDED, DEADLINE))
    end = await last_event(executor)
    assert isinstance(end, Unreachable) and end.started, end
    assert executor.asked == 1
    assert "could not say" in end.reason


@pytest.mark.asyncio
async def test_a_run_that_may_have_arrived_at_an_executor_that_cannot_be_reached_ends_as_possibly_started() -> None:
    # The host does not answer at all (powered off, or cut off from this
    # dispatcher but perhaps still running what it was given).
    executor = FakeExecutor(error(grpc.StatusCode.UNAVAILABLE, BROKE), error(grpc.StatusCode.UNAVAILABLE, TIMED_OUT))
    end = await last_event(executor)
    assert isinstance(end, Unreachable) and end.started, end


@pytest.mark.asyncio
async def test_a_run_that_may_have_arrived_where_nothing_listens_now_did_not_start_there() -> None:
    # The executor process is gone; a restarted one turns what it held into `lost` results.
    executor = FakeExecutor(error(grpc.StatusCode.UNAVAILABLE, BROKE), error(grpc.StatusCode.UNAVAILABLE, REFUSED))
    end = await last_event(executor)
    assert isinstance(end, Unreachable) and not end.started, end


@pytest.mark.asyncio
async def test_a_run_that_may_have_arrived_at_an_executor_that_answers_it_does_not_have_it_did_not_start_there() -> None:
    executor = FakeExecutor(error(grpc.StatusCode.UNAVAILABLE, BROKE), None)
    end = await last_event(executor)
    assert isinstance(end, Unreachable) and not end.started, end
    assert executor.asked == 1


@pytest.mark.asyncio
async def test_a_run_that_never_reached_the_executor_did_not_start_there_whatever_it_says_later() -> None:
    # Every call failed to connect: nothing was ever delivered, so there is
    # nothing to ask (and an unanswered question must not make it "started").
    executor = FakeExecutor(error(grpc.StatusCode.UNAVAILABLE, TIMED_OUT), error(grpc.StatusCode.DEADLINE_EXCEEDED, DEADLINE))
    end = await last_event(executor)
    assert isinstance(end, Unreachable) and not end.started, end
    assert executor.asked == 0
