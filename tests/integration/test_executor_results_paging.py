"""Collecting results from a real executor: ListResults in pages that always
fit a gRPC message, and an executor that answers with an error is never taken
for one that does not know the run (by the monitor's reconciliation or by a
dispatcher adopting a run)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from crontrio.common import status
from crontrio.common.config import DatabaseConfig
from crontrio.common.model import Job, RunRecord
from crontrio.common.registry.static import StaticRegistry
from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.engine import make_engine
from crontrio.common.store.migrate import ensure_schema
from crontrio.common.store.sql_store import SqlStore
from crontrio.dispatcher.executor_client import ExecutorClients
from crontrio.dispatcher.executor_link import ExecutorLink
from crontrio.monitor.dispatcher_links import DispatcherLinks
from crontrio.monitor.reconcile import Reconciler
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc
from testing_support.executor import Executor, run, running_executor, shell, start_executor
from testing_support.services import free_port

GRPC_MESSAGE_LIMIT = 16 * 1024 * 1024
PAGE_BYTES = 4 * 1024 * 1024  # the executor's page size


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Executor]:
    yield from running_executor(tmp_path_factory.mktemp("paging"))


async def read_pages(
    stub: crontrio_pb2_grpc.ExecutorStub, run_ids: list[str], max_page_bytes: int = 0
) -> tuple[list[pb.ListResultsReply], dict[str, pb.RunFinished]]:
    pages: list[pb.ListResultsReply] = []
    listed: dict[str, pb.RunFinished] = {}
    token = ""
    while True:
        reply = await stub.ListResults(pb.ListResultsRequest(run_ids=run_ids, page_token=token, max_page_bytes=max_page_bytes))
        pages.append(reply)
        for result in reply.results:
            assert result.run_id not in listed, f"{result.run_id} listed twice"
            listed[result.run_id] = result
        token = reply.next_page_token
        if not token:
            return pages, listed


async def test_results_beyond_one_message_come_in_pages_none_missed(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    mib = 1024 * 1024
    requests = [shell(f"head -c {mib} /dev/zero | tr '\\0' y", output_limit_bytes=mib) for _ in range(20)]
    await asyncio.gather(*(run(stub, r) for r in requests))
    ids = [r.run_id for r in requests]
    # A run still going is listed as running, on every page.
    going = shell("sleep 30")
    call = stub.Run(going, timeout=60)
    assert (await call.read()).HasField("started")
    try:
        pages, listed = await read_pages(stub, [*ids, going.run_id])
        assert set(listed) == set(ids)
        assert all(p.ByteSize() < PAGE_BYTES + 64 * 1024 for p in pages), [p.ByteSize() for p in pages]
        assert sum(p.ByteSize() for p in pages) > GRPC_MESSAGE_LIMIT  # would not have fit one reply
        assert all(list(p.running_run_ids) == [going.run_id] for p in pages)
        # Smaller pages on request; a result larger than the page still comes, alone.
        pages, listed = await read_pages(stub, ids, max_page_bytes=mib)
        assert set(listed) == set(ids) and [len(p.results) for p in pages] == [1] * len(ids)
    finally:
        await stub.Kill(pb.KillRequest(run_id=going.run_id))
        call.cancel()
    await stub.Ack(pb.AckRequest(run_ids=[*ids, going.run_id]))


async def test_a_run_finishing_while_a_caller_pages_is_not_missed(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    first = [shell("echo early") for _ in range(3)]
    for request in first:
        await run(stub, request)
    late = shell("echo late")
    ids = [r.run_id for r in first] + [late.run_id]
    reply = await stub.ListResults(pb.ListResultsRequest(run_ids=ids, max_page_bytes=1))
    assert len(reply.results) == 1 and reply.next_page_token
    await run(stub, late)  # finishes after the first page was read
    listed = {r.run_id for r in reply.results}
    token = reply.next_page_token
    while token:
        reply = await stub.ListResults(pb.ListResultsRequest(run_ids=ids, page_token=token, max_page_bytes=1))
        listed |= {r.run_id for r in reply.results}
        token = reply.next_page_token
    assert listed == set(ids)
    await stub.Ack(pb.AckRequest(run_ids=ids))


async def test_a_bad_page_token_is_refused_naming_it(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListResults(pb.ListResultsRequest(page_token="not-a-token"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("page_token:")


# ---------------------------------------------------------------- errors are not "unknown"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    cfg = DatabaseConfig(driver="sqlite", path=str(tmp_path / "crontrio.db"))
    engine = make_engine(cfg)
    ensure_schema(engine, cfg)
    s = SqlStore(engine)
    yield s
    s.close()


def hide_results(journal: Path, hidden: bool) -> None:
    """Make the executor's ListResults fail (its journal loses its results
    table: "no such table"), or work again, from outside the process."""
    with sqlite3.connect(journal, timeout=10) as conn:
        old, new = ("results", "results_hidden") if hidden else ("results_hidden", "results")
        conn.execute(f"ALTER TABLE {old} RENAME TO {new}")


async def test_an_executor_answering_with_an_error_is_not_taken_for_one_without_the_run(
    tmp_path: Path, store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    ex = start_executor(tmp_path / "executor")
    try:
        job = store.create_job(Job(name="orphaned", spec="0 0 1 1 *", command="echo collected"))
        scheduled = int(time.time() * 1000) - 60_000
        request = shell("echo collected", run_id=f"{job.id}-{scheduled}-1", job_id=job.id, scheduled_ms=scheduled)
        async with ex.channel() as channel:
            await run(crontrio_pb2_grpc.ExecutorStub(channel), request)
        # Its dispatcher died before recording the result (no live dispatcher here).
        record = RunRecord(
            run_id=request.run_id,
            job_id=job.id,
            job_name=job.name,
            scheduled_ms=scheduled,
            attempt=1,
            status=status.RUNNING,
            dispatcher="gone@1",
            executor=ex.address,
            started_ms=scheduled,
            created_ms=scheduled,
        )
        store.write_runs([record], [])
        reconciler = Reconciler(
            AsyncStore(store, workers=1),
            DispatcherLinks([]),
            StaticRegistry([ex.address]),
            lost_after_seconds=0.0,
            cluster_secret=ex.secret,
        )
        hide_results(ex.journal, True)
        caplog.set_level(logging.INFO, logger="crontrio.monitor.reconcile")
        for _ in range(3):
            assert await reconciler.pass_once() == 0
        assert store.get_run(request.run_id).status == status.RUNNING  # type: ignore[union-attr]
        warnings = [r.getMessage() for r in caplog.records if "answered ListResults with" in r.getMessage()]
        assert len(warnings) == 1 and "UNKNOWN" in warnings[0], warnings

        # A dispatcher adopting the run sends it to that executor (where Run
        # replays it), not to another one where it would run again.
        dead = f"127.0.0.1:{free_port()}"
        link = ExecutorLink(StaticRegistry([dead, ex.address]), ExecutorClients(cluster_secret=ex.secret))
        assert (await link.holders_of([request.run_id]))[request.run_id] == ex.address

        hide_results(ex.journal, False)
        assert await reconciler.pass_once() == 1
        settled = store.get_run(request.run_id)
        assert settled is not None and settled.status == status.SUCCEEDED and settled.output == b"collected\n"
    finally:
        code, _ = ex.stop()
        assert code == 0, ex.proc.log_text()
