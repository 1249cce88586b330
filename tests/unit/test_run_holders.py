"""Which executor has each of many adopted runs (dispatcher/run_holders.py):
one ListResults per executor for the batch, and only an answer (or a refused
connection) counts as "not here". An executor that cannot say is asked again
while two or more cannot; a run nobody claims then goes to the one that
could not say, never to another executor where it could run twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

from crontrio.common import status
from crontrio.dispatcher import run_holders
from crontrio.dispatcher.executor_client import ExecutorClients
from crontrio.protos import crontrio_pb2 as pb

REFUSED = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:5921: "
    "Failed to connect to remote host: Connection refused"
)
Reply = Callable[[pb.ListResultsRequest], pb.ListResultsReply]


def fail(code: grpc.StatusCode, details: str = "") -> Reply:
    def reply(_request: pb.ListResultsRequest) -> pb.ListResultsReply:
        raise AioRpcError(code, Metadata(), Metadata(), details)

    return reply


def has(running: frozenset[str] | set[str] = frozenset(), finished: dict[str, str] | None = None) -> Reply:
    """An executor holding `running` (running or held) and results of `finished` (run id -> status)."""

    def reply(request: pb.ListResultsRequest) -> pb.ListResultsReply:
        asked = set(request.run_ids)
        results = [pb.RunFinished(run_id=r, status=s) for r, s in (finished or {}).items() if r in asked]
        return pb.ListResultsReply(results=results, running_run_ids=sorted(asked & running))

    return reply


class FakeExecutors:
    """Each address answers ListResults with its scripted replies in turn (the last one ever after)."""

    def __init__(self, scripts: dict[str, list[Reply]]) -> None:
        self.scripts = scripts
        self.live = sorted(scripts)
        self.requests: dict[str, list[list[str]]] = {a: [] for a in scripts}

    def stub(self, address: str) -> Any:
        fakes = self

        class Stub:
            async def ListResults(self, request: pb.ListResultsRequest, timeout: float = 0) -> pb.ListResultsReply:
                fakes.requests[address].append(list(request.run_ids))
                script = fakes.scripts[address]
                answer = script.pop(0) if len(script) > 1 else script[0]
                return answer(request)

        return Stub()

    async def holders(self, run_ids: list[str]) -> dict[str, str]:
        return await run_holders.holders_of(cast(ExecutorClients, self), lambda: list(self.live), run_ids)


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_holders, "ASK_SECONDS", 2.0)


async def test_one_call_per_executor_for_the_whole_batch_says_who_has_which() -> None:
    ids = [f"r{i}" for i in range(5_000)]
    fakes = FakeExecutors(
        {
            "a:1": [has(running={"r1", "r2"}, finished={"r3": status.SUCCEEDED, "r4": status.NOT_STARTED})],
            "b:1": [has(running={"r4"}, finished={"r5": status.FAILED})],
        }
    )
    holders = await fakes.holders(ids)
    assert {r: h for r, h in holders.items() if h} == {"r1": "a:1", "r2": "a:1", "r3": "a:1", "r4": "b:1", "r5": "b:1"}
    assert len(holders) == len(ids)
    # In requests of at most IDS_PER_CALL ids, each run asked once per executor.
    for address in ("a:1", "b:1"):
        sizes = [len(r) for r in fakes.requests[address]]
        assert max(sizes) <= run_holders.IDS_PER_CALL and sum(sizes) == len(ids), sizes


async def test_an_executor_that_does_not_answer_is_not_taken_for_one_without_the_run() -> None:
    """The failover burst that ran 10 runs twice: the busy executor holding
    them timed out, and they were sent to the other one."""
    fakes = FakeExecutors({"a:1": [fail(grpc.StatusCode.DEADLINE_EXCEEDED)], "b:1": [has()]})
    assert await fakes.holders(["r1", "r2"]) == {"r1": "a:1", "r2": "a:1"}
    assert len(fakes.requests["a:1"]) == 1  # one left that cannot say: nothing to wait for


async def test_two_that_cannot_say_are_asked_again_until_at_most_one_cannot() -> None:
    fakes = FakeExecutors(
        {
            "a:1": [fail(grpc.StatusCode.DEADLINE_EXCEEDED), fail(grpc.StatusCode.UNKNOWN, "boom"), has(running={"r2"})],
            "b:1": [fail(grpc.StatusCode.DEADLINE_EXCEEDED), has(running={"r1"})],
            "c:1": [has()],
        }
    )
    # After the second round only a:1 cannot say: what nobody claims may be
    # there, so it goes there (where Run attaches to it or starts it).
    assert await fakes.holders(["r1", "r2", "r3"]) == {"r1": "b:1", "r2": "a:1", "r3": "a:1"}
    assert len(fakes.requests["c:1"]) == 1  # it answered: not asked again
    assert fakes.requests["b:1"] == [["r1", "r2", "r3"]] * 2
    assert len(fakes.requests["a:1"]) == 2


async def test_an_executor_that_refuses_connections_holds_nothing() -> None:
    fakes = FakeExecutors({"a:1": [fail(grpc.StatusCode.UNAVAILABLE, REFUSED)], "b:1": [has(running={"r1"})]})
    assert await fakes.holders(["r1", "r2"]) == {"r1": "b:1", "r2": ""}


async def test_an_executor_that_left_the_registry_holds_nothing() -> None:
    fakes = FakeExecutors(
        {"a:1": [fail(grpc.StatusCode.DEADLINE_EXCEEDED)], "b:1": [fail(grpc.StatusCode.DEADLINE_EXCEEDED)], "c:1": [has()]}
    )
    fakes.live = ["a:1", "b:1", "c:1"]

    original = fakes.stub

    def stub(address: str) -> Any:
        if address == "a:1":
            fakes.live = ["b:1", "c:1"]  # its lease expires while it is asked
        return original(address)

    fakes.stub = stub  # type: ignore[method-assign]
    assert await fakes.holders(["r1"]) == {"r1": "b:1"}


async def test_when_two_never_say_the_runs_go_to_one_of_them_once_the_time_is_up() -> None:
    fakes = FakeExecutors({"a:1": [fail(grpc.StatusCode.DEADLINE_EXCEEDED)], "b:1": [fail(grpc.StatusCode.DEADLINE_EXCEEDED)]})
    assert await fakes.holders(["r1"]) == {"r1": "a:1"}
    assert len(fakes.requests["a:1"]) >= 3  # asked again meanwhile
