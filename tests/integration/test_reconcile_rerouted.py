"""The monitor's reconciliation of a run that moved executors: a run sent
ahead to executor A, which was killed before its time, went to executor B
(dispatcher/firing.py). A, restarted, journals it `lost` (it died holding
it). Its dispatcher then dies too: reconciling must follow B (running, then
its real result), never settle the run from A's stale `lost` result, which
would retry it and run it twice. Real executor processes, a real SQLite store."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.common.config import DatabaseConfig
from crontrio.common.model import RunRecord
from crontrio.common.registry.static import StaticRegistry
from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.engine import make_engine
from crontrio.common.store.migrate import ensure_schema
from crontrio.common.store.sql_store import SqlStore
from crontrio.monitor.dispatcher_links import DispatcherLinks
from crontrio.monitor.reconcile import Reconciler
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc
from testing_support.executor import read_until, shell, start_executor
from testing_support.services import cluster_channel, wait_until


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    cfg = DatabaseConfig(driver="sqlite", path=str(tmp_path / "store.db"))
    engine = make_engine(cfg)
    ensure_schema(engine, cfg)
    s = SqlStore(engine)
    yield s
    s.close()


SECRET = "rerouted-test-cluster-secret-0123456789"


async def held_on(address: str, run_id: str) -> bool:
    async with cluster_channel(address, SECRET) as channel:
        listed = await crontrio_pb2_grpc.ExecutorStub(channel).ListResults(pb.ListResultsRequest(run_ids=[run_id]))
        return run_id in listed.running_run_ids


@pytest.mark.asyncio
async def test_a_stale_lost_result_on_the_first_executor_never_settles_a_rerouted_run(tmp_path: Path, store: SqlStore) -> None:
    go = tmp_path / "go"
    request = shell(f"while [ ! -e {go} ]; do sleep 0.05; done; echo done", scheduled_ms=now_ms() + 4000)
    first = start_executor(tmp_path / "a", secret=SECRET)
    try:
        async with first.channel() as channel:
            call = crontrio_pb2_grpc.ExecutorStub(channel).Run(request, timeout=60)
            await wait_until(lambda: held_on(first.address, request.run_id), 10.0, "the run to be held on A", interval=0.05)
            first.proc.kill()  # dies holding it, before its time
            call.cancel()
    finally:
        first.proc.kill()
    again = start_executor(tmp_path / "a2", journal=first.journal, secret=SECRET)  # recovers it as lost
    other = start_executor(tmp_path / "b", secret=SECRET)
    async_store = AsyncStore(store)
    try:
        async with other.channel() as channel:
            request.scheduled_ms = now_ms()
            moved = crontrio_pb2_grpc.ExecutorStub(channel).Run(request, timeout=60)
            first_event = await moved.read()
            assert first_event.HasField("started"), first_event
            # Its dispatcher is gone (the monitor sees no live dispatcher at all).
            store.write_runs(
                [
                    RunRecord(
                        run_id=request.run_id,
                        job_id=request.job_id,
                        job_name=request.job_name,
                        scheduled_ms=request.scheduled_ms,
                        attempt=1,
                        status=status.RUNNING,
                        dispatcher="gone@1",
                        created_ms=now_ms() - 60_000,
                    )
                ],
                [],
            )
            reconciler = Reconciler(
                async_store,
                DispatcherLinks([], discovered=dict),
                StaticRegistry([again.address, other.address]),
                0.1,
                cluster_secret=SECRET,
            )
            assert await reconciler.pass_once() == 0  # still running on B: nothing to settle
            run = store.get_run(request.run_id)
            assert run is not None and run.status == status.RUNNING, run
            go.touch()
            await read_until(moved, lambda out: b"done" in out, [])
        await wait_until(lambda: reconciler.pass_once(), 10.0, "the run's result to be collected", interval=0.05)
        run = store.get_run(request.run_id)
        assert run is not None and run.status == status.SUCCEEDED and run.output == b"done\n", run
    finally:
        await async_store.close()
        again.stop()
        other.stop()


class _StaleOrphans(Reconciler):
    """Lists the run as its dead dispatcher's although a live one adopted it
    in between: the race between the monitor's scan and an adoption."""

    def __init__(self, *args: object, stale: RunRecord, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._stale = stale

    async def orphans(self) -> list[RunRecord]:
        return [self._stale]


@pytest.mark.asyncio
async def test_a_result_is_not_acknowledged_for_a_run_a_live_dispatcher_adopted(tmp_path: Path, store: SqlStore) -> None:
    executor = start_executor(tmp_path / "e", secret=SECRET)
    async_store = AsyncStore(store)
    try:
        request = shell("echo done", scheduled_ms=now_ms())
        async with executor.channel() as channel:
            stub = crontrio_pb2_grpc.ExecutorStub(channel)
            await read_until(stub.Run(request, timeout=60), lambda out: b"done" in out, [])
            stale = RunRecord(
                run_id=request.run_id,
                job_id=request.job_id,
                job_name=request.job_name,
                scheduled_ms=request.scheduled_ms,
                attempt=1,
                status=status.RUNNING,
                dispatcher="gone@1",
                created_ms=now_ms() - 60_000,
            )
            # In the store it is the adopter's now, still running under it.
            store.write_runs([dataclasses.replace(stale, dispatcher="live@2")], [])
            reconciler = _StaleOrphans(
                async_store,
                DispatcherLinks([], discovered=dict),
                StaticRegistry([executor.address]),
                0.1,
                cluster_secret=SECRET,
                stale=stale,
            )
            await reconciler.pass_once()
            run = store.get_run(request.run_id)
            assert run is not None and run.status == status.RUNNING and run.dispatcher == "live@2", run
            # The executor still holds the result for the adopter to collect.
            listed = await stub.ListResults(pb.ListResultsRequest(run_ids=[request.run_id]))
            assert [r.run_id for r in listed.results] == [request.run_id], listed
    finally:
        await async_store.close()
        executor.stop()
