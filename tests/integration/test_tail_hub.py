"""TailRun's feeds against a real `python -m crontrio.executor` and a real SQLite store:
many followers of one run share one Attach stream and one store poll, and
the follower caps hold."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from crontrio.common.config import DatabaseConfig
from crontrio.common.model import RunRecord
from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.engine import make_engine
from crontrio.common.store.migrate import ensure_schema
from crontrio.common.store.sql_store import SqlStore
from crontrio.dispatcher.executor_client import ExecutorClients
from crontrio.dispatcher.tail_hub import TailEndedError, TailHub, TailLimitError
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc
from testing_support.executor import Executor, read_rest, read_until, running_executor, shell
from testing_support.services import wait_until


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Executor]:
    yield from running_executor(tmp_path_factory.mktemp("executor-tail"))


@dataclass
class Parts:
    store: AsyncStore
    clients: ExecutorClients
    hubs: list[TailHub] = field(default_factory=list)

    def hub(self, **limits: int) -> TailHub:
        hub = TailHub(self.store, self.clients, **limits)
        self.hubs.append(hub)
        return hub


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    cfg = DatabaseConfig(driver="sqlite", path=str(tmp_path / "store.db"))
    engine = make_engine(cfg)
    ensure_schema(engine, cfg)
    p = Parts(AsyncStore(SqlStore(engine)), ExecutorClients())
    try:
        yield p
    finally:
        for hub in p.hubs:
            await hub.close()
        await p.clients.close()
        await p.store.close()


@dataclass
class Follower:
    chunks: list[pb.TailChunk] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def data(self) -> bytes:
        return b"".join(c.data for c in self.chunks)

    @property
    def final(self) -> str:
        return self.chunks[-1].status if self.chunks else ""


def follow(hub: TailHub, run_id: str) -> tuple[Follower, asyncio.Task[None]]:
    f = Follower()

    async def read() -> None:
        try:
            async for chunk in hub.follow(run_id):
                f.chunks.append(chunk)
        except (TailLimitError, TailEndedError) as exc:
            f.error = exc

    return f, asyncio.get_running_loop().create_task(read())


def pending_run(run_id: str) -> RunRecord:
    job_id, scheduled, attempt = (int(part) for part in run_id.split("-")[:3])
    return RunRecord(run_id=run_id, job_id=job_id, job_name="test-job", scheduled_ms=scheduled, attempt=attempt, status="pending")


async def test_many_followers_share_one_upstream_and_one_store_poll(parts: Parts, executor: Executor, tmp_path: Path) -> None:
    await parts.clients.close()
    parts.clients = ExecutorClients(cluster_secret=executor.secret)  # executors require the cluster secret
    hub = parts.hub(per_run=1000, total=1000)
    go = tmp_path / "go"
    request = shell(f"echo first; while [ ! -e {go} ]; do sleep 0.05; done; echo second", run_id="7-1700000000123-1")
    parts.store.blocking.write_runs([pending_run(request.run_id)], [])

    # 300 followers while the run has no executor yet: they wait on one shared poll.
    early = [follow(hub, request.run_id) for _ in range(300)]
    await wait_until(lambda: hub.followers == 300, 20, "300 followers registered")
    async with executor.channel() as channel:
        runner = crontrio_pb2_grpc.ExecutorStub(channel).Run(request, timeout=60)
        await read_until(runner, lambda out: b"first" in out, [])
        parts.store.blocking.write_runs([], [(request.run_id, {"status": "running", "executor": executor.address})])
        await wait_until(lambda: all(f.data == b"first\n" for f, _ in early), 20, "every follower got the output so far")
        # 100 more join while it runs: the feed's tail catches them up, no new upstream.
        late = [follow(hub, request.run_id) for _ in range(100)]
        await wait_until(lambda: all(f.data == b"first\n" for f, _ in late), 20, "late followers caught up")
        go.touch()
        await asyncio.wait_for(asyncio.gather(*(t for _, t in early + late)), 30)
        assert (await read_rest(runner))[-1].finished.status == "succeeded"

    for f, _ in early + late:
        assert f.error is None and f.data == b"first\nsecond\n" and f.final == "succeeded", (f.error, f.chunks)
    # One feed, one Attach stream, one store poll (not 400 per interval).
    assert hub.stats.feeds_started == 1 and hub.stats.upstreams_opened == 1, hub.stats
    assert hub.stats.store_reads <= 12, hub.stats  # 0.2 s doubling to 2 s while it waited; old code: 300 each 0.2 s
    assert hub.followers == 0 and hub.followers_of(request.run_id) == 0

    # A follower of the finished run gets what the store has (the dispatcher
    # records results; here the test does), through a fresh feed.
    parts.store.blocking.write_runs([], [(request.run_id, {"status": "succeeded", "output": b"first\nsecond\n"})])
    after, task = follow(hub, request.run_id)
    await asyncio.wait_for(task, 10)
    assert after.data == b"first\nsecond\n" and after.final == "succeeded"


async def test_follower_caps_per_run_and_in_total(parts: Parts) -> None:
    hub = parts.hub(per_run=3, total=5)
    for run_id in ("1-1000-1", "2-1000-1"):
        parts.store.blocking.write_runs([pending_run(run_id)], [])
    on_a = [follow(hub, "1-1000-1") for _ in range(3)]
    await wait_until(lambda: hub.followers_of("1-1000-1") == 3, 10, "three followers of run a")
    refused, task = follow(hub, "1-1000-1")
    await asyncio.wait_for(task, 5)
    assert isinstance(refused.error, TailLimitError) and "tail_followers_per_run" in str(refused.error)

    on_b = [follow(hub, "2-1000-1") for _ in range(2)]
    await wait_until(lambda: hub.followers == 5, 10, "five followers in all")
    refused, task = follow(hub, "2-1000-1")
    await asyncio.wait_for(task, 5)
    assert isinstance(refused.error, TailLimitError) and "tail_followers_total" in str(refused.error)

    # A follower leaving frees its place; the last one leaving stops the feed.
    on_a[0][1].cancel()
    await wait_until(lambda: hub.followers == 4, 10, "a follower gone")
    again, task = follow(hub, "2-1000-1")
    await wait_until(lambda: hub.followers == 5, 10, "its place taken")
    for _, t in [*on_a, *on_b, (again, task)]:
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await t
    assert hub.followers == 0 and hub.followers_of("1-1000-1") == hub.followers_of("2-1000-1") == 0


async def test_unknown_run_is_not_found_for_every_follower(parts: Parts) -> None:
    hub = parts.hub()
    followers = [follow(hub, "9-9-9") for _ in range(3)]
    await asyncio.wait_for(asyncio.gather(*(t for _, t in followers)), 10)
    for f, _ in followers:
        assert f.error is not None and "no run '9-9-9'" in str(f.error)
    assert hub.stats.store_reads == 1 and hub.followers == 0


async def test_a_run_that_ended_before_the_attach_and_is_not_recorded_yet_gives_its_output(
    parts: Parts, executor: Executor
) -> None:
    # The moment between the executor's end of the run and the dispatcher's
    # record of it: the store still says running, the executor replays the
    # result. A follower must get the output, not just the status.
    await parts.clients.close()
    parts.clients = ExecutorClients(cluster_secret=executor.secret)
    hub = parts.hub()
    request = shell("echo one; echo two", run_id="8-1700000000456-1")
    parts.store.blocking.write_runs([pending_run(request.run_id)], [])
    async with executor.channel() as channel:
        runner = crontrio_pb2_grpc.ExecutorStub(channel).Run(request, timeout=60)
        assert (await read_rest(runner))[-1].finished.status == "succeeded"  # ended, not acknowledged
    parts.store.blocking.write_runs([], [(request.run_id, {"status": "running", "executor": executor.address})])
    after, task = follow(hub, request.run_id)
    await asyncio.wait_for(task, 10)
    assert after.error is None and after.data == b"one\ntwo\n" and after.final == "succeeded", after.chunks
    assert hub.stats.upstreams_opened == 1, "it was not read through the executor"
