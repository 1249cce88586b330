"""A burst of held runs starting at their instant, in process: one timer for
all of them, a kill while held still stops just that one; an HTTP run's stop
and its executor's cancellation; the journal's batched statements."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest_asyncio

from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.common.config import ExecutorConfig
from crontrio.executor.http_task import HttpClients
from crontrio.executor.journal import Journal, Lookup, StartedRun
from crontrio.executor.run_handle import RunHandle
from crontrio.executor.runs import RunTable
from crontrio.executor.task_drivers import drive_http
from crontrio.protos import crontrio_pb2 as pb
from testing_support.counting_http import CountingServer
from testing_support.services import wait_until


def shell(command: str, scheduled_ms: int) -> pb.RunRequest:
    return pb.RunRequest(
        run_id=f"9-{uuid.uuid4().hex[:12]}-1",
        job_id=9,
        job_name="burst",
        scheduled_ms=scheduled_ms,
        attempt=1,
        shell=pb.ShellTask(command=command),
    )


@pytest_asyncio.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    journal = Journal(str(tmp_path / "journal.db"))
    await journal.open()
    yield journal
    await journal.close()


@pytest_asyncio.fixture
async def table(journal: Journal) -> AsyncIterator[RunTable]:
    runs = RunTable(ExecutorConfig(kill_grace_seconds=1.0), journal, cast(HttpClients, object()), host="h", address="a")
    yield runs
    runs.kill_all("test over")
    assert await runs.wait_idle(20), "runs still going at the end of the test"


async def events_of(stream: AsyncIterator[pb.RunEvent]) -> list[pb.RunEvent]:
    return [event async for event in stream]


# ---------------------------------------------------------------- held for one instant


async def test_runs_held_for_one_instant_all_start_on_one_timer_and_a_killed_one_never_runs(
    table: RunTable, tmp_path: Path
) -> None:
    due = now_ms() + 2_500
    requests = [shell(f"echo ran-{i} >> {tmp_path}/ran-{i}", due) for i in range(60)]
    streams = [await table.run(request) for request in requests]
    # Every run is held (accepted, journaled, not started) on one timer.
    assert table.running_count == 60
    await wait_until(lambda: table._instants._held() == 60, 20, "every run to be held")
    assert len(table._instants) == 1
    killed = requests[7]
    assert table.kill(killed.run_id, "killed while held")
    outcomes = await asyncio.wait_for(asyncio.gather(*(events_of(s) for s in streams)), 60)
    for i, (request, events) in enumerate(zip(requests, outcomes, strict=True)):
        finished = events[-1].finished
        if request is killed:
            assert finished.status == status.KILLED
            assert "before its scheduled start" in finished.error
            assert finished.started_ms == 0 and finished.finished_ms < due
            assert not (tmp_path / f"ran-{i}").exists()
        else:
            assert finished.status == status.SUCCEEDED, (request.run_id, finished)
            assert events[0].started.started_ms >= due
            assert (tmp_path / f"ran-{i}").read_text() == f"ran-{i}\n"
    assert len(table._instants) == 0


async def test_runs_held_for_two_instants_start_each_at_its_own(table: RunTable) -> None:
    first = now_ms() + 1_500
    second = first + 1_000
    early = [await table.run(shell("true", first)) for _ in range(5)]
    late = [await table.run(shell("true", second)) for _ in range(5)]
    await wait_until(lambda: table._instants._held() == 10, 20, "every run to be held")
    assert len(table._instants) == 2
    for stream, due in [(s, first) for s in early] + [(s, second) for s in late]:
        events = await asyncio.wait_for(events_of(stream), 30)
        assert events[0].started.started_ms >= due
        assert events[-1].finished.status == status.SUCCEEDED


async def test_cancelling_the_last_run_held_for_an_instant_stops_its_timer(table: RunTable) -> None:
    request = shell("true", now_ms() + 4_000)
    stream = await table.run(request)
    await wait_until(lambda: len(table._instants) == 1, 20, "the run to be held on a timer")
    assert table.cancel_held(request.run_id, "job paused")
    (finished,) = [e.finished for e in await asyncio.wait_for(events_of(stream), 20) if e.HasField("finished")]
    assert finished.status == status.SKIPPED
    assert len(table._instants) == 0


# ---------------------------------------------------------------- an HTTP run in its own task


class _Arrivals:
    """How many requests the silent server has begun to receive."""

    count = 0


async def _silent_server() -> tuple[asyncio.Server, str, _Arrivals]:
    """Accepts connections and never answers: a request waits until stopped."""
    arrivals = _Arrivals()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await reader.read(1):
            arrivals.count += 1  # the request is in flight
            await reader.read()  # until the client goes away
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/wait", arrivals


def http_handle(url: str) -> RunHandle:
    request = pb.RunRequest(run_id="h-1", job_id=1, job_name="j", scheduled_ms=1, attempt=1, http=pb.HttpTask(url=url))
    return RunHandle(request, 1024)


def started(req: pb.RunRequest, pid: int, started_ms: int) -> pb.RunStarted:
    return pb.RunStarted(run_id=req.run_id, pid=pid, started_ms=started_ms)


async def _until_started(handle: RunHandle) -> None:
    await wait_until(lambda: handle.started is not None, 20, "the HTTP run to start")


async def test_stopping_an_http_run_ends_it_killed_and_its_task_goes_on() -> None:
    server, url, arrivals = await _silent_server()
    clients = HttpClients()
    try:
        handle = http_handle(url)
        task = asyncio.create_task(drive_http(handle, 1, started=started, clients=clients))
        await _until_started(handle)
        await wait_until(lambda: arrivals.count == 1, 20, "the request to reach the server (which never answers)")
        assert handle.request_stop(status.KILLED, "killed on request")
        end = await asyncio.wait_for(task, 20)
        # The stop cancelled the run's own task; the driver took that back and
        # returned the run's end: the task itself was not cancelled.
        assert (end.status, end.error) == (status.KILLED, "killed on request")
        assert not task.cancelled() and task.cancelling() == 0
        assert not handle.request_stop(status.KILLED, "again")  # nothing left to stop
    finally:
        await clients.aclose()
        server.close()


async def test_cancelling_an_http_runs_task_is_not_taken_for_its_stop() -> None:
    server, url, arrivals = await _silent_server()
    clients = HttpClients()
    try:
        for also_stopped in (False, True):
            handle = http_handle(url)
            task = asyncio.create_task(drive_http(handle, 1, started=started, clients=clients))
            arrived = arrivals.count
            await _until_started(handle)
            # Awaited within this iteration: `arrived` is this iteration's.
            await wait_until(lambda: arrivals.count > arrived, 20, "the request to reach the server")  # noqa: B023
            if also_stopped:
                handle.request_stop(status.KILLED, "killed on request")
            task.cancel()  # the executor's own cancellation (shutdown): it stands
            done, _ = await asyncio.wait({task}, timeout=20)
            assert done and task.cancelled(), (also_stopped, task)
    finally:
        await clients.aclose()
        server.close()


# ---------------------------------------------------------------- the journal's batches


def record(run_id: str) -> StartedRun:
    return StartedRun(
        run_id=run_id, started_ms=5, host="h", executor="e", task="shell", job_id=1, job_name="j", scheduled_ms=5, attempt=1
    )


def result(run_id: str) -> pb.RunFinished:
    return pb.RunFinished(run_id=run_id, status=status.SUCCEEDED, started_ms=5, finished_ms=6)


class _CountingConnection:
    """The journal's connection, counting the statements it is given."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.calls: list[tuple[str, str]] = []

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.calls.append(("execute", sql))
        return self._db.execute(sql, *args)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        self.calls.append(("executemany", sql))
        return self._db.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


async def test_a_drain_of_starts_and_results_is_one_statement_per_kind(journal: Journal, tmp_path: Path) -> None:
    await journal.begin(record("done"))
    await journal.put(result("done"))
    await journal.begin(record("acked"))
    await journal.put(result("acked"))
    await journal.ack(["acked"], acked_ms=77)
    await journal.begin(record("going"))
    await journal.begin(record("ending-1"))
    await journal.begin(record("ending-2"))
    counting = _CountingConnection(journal._conn())
    journal._db = cast(sqlite3.Connection, counting)
    begins = [f"new-{i}" for i in range(200)]
    calls: list[tuple[Any, tuple[Any, ...]]] = [(journal._begin_if_new, (record(run_id),)) for run_id in begins]
    calls += [(journal._begin_if_new, (record(run_id),)) for run_id in ("done", "acked", "going", "new-3")]
    calls += [(journal._put, (r.run_id, r.finished_ms, r.SerializeToString())) for r in map(result, ("ending-1", "ending-2"))]
    calls += [(journal._begin_if_new, (record("last"),))]
    outcomes = await journal._call(journal._run_batch, calls)
    assert all(ok for ok, _ in outcomes), outcomes
    values = [value for _, value in outcomes]
    assert values[:200] == [None] * 200
    done, acked, going, again = values[200:204]
    assert done == Lookup(result=result("done"))
    assert acked == Lookup(acked_ms=77)
    assert going == Lookup(started=record("going"))
    assert again == Lookup(started=record("new-3"))  # twice in one batch: the second finds the first
    assert values[204:] == [None, None, None]
    # One transaction; for each run of calls of one kind, one SELECT per
    # table and one executemany per statement, not a statement per run: the
    # 204 starts, then the 2 results (an executemany each for their INSERT
    # and DELETE); the lone start at the end as a single call (3 SELECTs, an
    # INSERT). 12 statements in all, not ~1,000.
    statements = [sql.split(" (")[0] for how, sql in counting.calls]
    assert len(counting.calls) == 12, counting.calls
    assert [how for how, _ in counting.calls].count("executemany") == 3, counting.calls
    assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"
    journal._db = counting._db
    # What the batch wrote is committed: another connection sees it.
    with sqlite3.connect(tmp_path / "journal.db") as conn:
        started_ids = {row[0] for row in conn.execute("SELECT run_id FROM started")}
        assert started_ids == {*begins, "going", "last"}
        result_ids = {row[0] for row in conn.execute("SELECT run_id FROM results")}
        assert result_ids == {"done", "ending-1", "ending-2"}


# ---------------------------------------------------------------- HTTP runs held for an instant


async def test_held_http_runs_find_their_connections_open_at_their_instant(journal: Journal) -> None:
    server = CountingServer()
    listening = await server.start()
    http = HttpClients(max_connections=10)
    runs = RunTable(ExecutorConfig(kill_grace_seconds=1.0), journal, http, host="h", address="a")
    try:
        instant = now_ms() + 1_500
        requests = [
            pb.RunRequest(
                run_id=f"9-{uuid.uuid4().hex[:12]}-1",
                job_id=9,
                job_name="burst",
                scheduled_ms=instant,
                attempt=1,
                http=pb.HttpTask(url=f"http://127.0.0.1:{server.port}/job{i}", method="GET"),
            )
            for i in range(4)
        ]
        streams = [await runs.run(r) for r in requests]
        await wait_until(lambda: server.connections == 4, 10, "the held runs' connections, opened ahead")
        assert server.requests == 0 and now_ms() < instant, "a request went out before its instant"
        ends = await asyncio.gather(*(events_of(s) for s in streams))
        assert [e[-1].finished.status for e in ends] == [status.SUCCEEDED] * 4
        assert all(e[-1].finished.started_ms >= instant for e in ends)
        assert server.requests == 4 and server.connections == 4, "the runs opened connections of their own"
    finally:
        await http.aclose()
        listening.close()
