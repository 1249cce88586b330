"""ExecutorLink.replace_sent_ahead: an edit reaches a run sent ahead even
when the run has not reached its executor yet, and the newest edit wins."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crontrio.common.clock import now_ms
from crontrio.dispatcher.executor_link import ExecutorLink
from crontrio.protos import crontrio_pb2 as pb
from testing_support.services import wait_until


class FakeExecutor:
    """Kill answers: not held until `held` is set, then holds whatever it is given."""

    def __init__(self) -> None:
        self.held = False
        self.calls: list[pb.KillRequest] = []
        self.holds: pb.RunRequest | None = None

    async def Kill(self, request: pb.KillRequest, timeout: float = 0) -> pb.KillReply:
        self.calls.append(request)
        if not self.held:
            return pb.KillReply(killed=False)
        self.holds = request.replace_with
        return pb.KillReply(killed=True)


class FakeClients:
    def __init__(self, executor: FakeExecutor) -> None:
        self.executor = executor

    def stub(self, _address: str) -> Any:
        return self.executor


def request(command: str, ahead_ms: int = 5_000) -> pb.RunRequest:
    return pb.RunRequest(
        run_id="7-1-1", job_id=7, scheduled_ms=now_ms() + ahead_ms, attempt=1, shell=pb.ShellTask(command=command)
    )


@pytest.mark.asyncio
async def test_a_replacement_is_asked_again_until_the_executor_holds_the_run() -> None:
    executor = FakeExecutor()
    link = ExecutorLink(None, FakeClients(executor))  # type: ignore[arg-type]
    first = request("echo old")
    link.note_ahead(first, "ex:1")
    done: asyncio.Future[pb.RunRequest] = asyncio.get_running_loop().create_future()
    new = request("echo new")
    new.scheduled_ms = first.scheduled_ms
    assert link.replace_sent_ahead(new, done.set_result)
    await wait_until(lambda: len(executor.calls) >= 2, 10, "the replacement to ask again")
    assert not done.done(), "replaced before the executor held the run"
    executor.held = True  # the run reached the executor
    assert await asyncio.wait_for(done, 10) == new
    assert executor.holds == new
    assert link.sent_request(first) == new, "a Run fallback would carry the old request"


@pytest.mark.asyncio
async def test_the_newest_edit_wins_and_a_started_run_is_left_alone() -> None:
    executor = FakeExecutor()
    link = ExecutorLink(None, FakeClients(executor))  # type: ignore[arg-type]
    first = request("echo old")
    link.note_ahead(first, "ex:1")
    second, third = request("echo 2"), request("echo 3")
    second.scheduled_ms = third.scheduled_ms = first.scheduled_ms
    told: list[str] = []
    link.replace_sent_ahead(second, lambda r: told.append(r.shell.command))
    link.replace_sent_ahead(third, lambda r: told.append(r.shell.command))
    executor.held = True
    await wait_until(lambda: told, 10, "the newest edit to be told")
    assert told == ["echo 3"] and executor.holds == third
    # Started there: no longer ahead, and asking stops.
    executor.held = False
    link.no_longer_ahead(first.job_id, first.run_id)
    assert not link.replace_sent_ahead(second, lambda r: told.append(r.shell.command))
