"""The start path of a run, in process: the journal's begin_if_new (lookup and begin
in one transaction), the pid journaled for orphan cleanup, spawning off the
event loop, and one pipe for stdout and stderr."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio

from crontrio.common import status
from crontrio.common.config import ExecutorConfig
from crontrio.executor import shell_task
from crontrio.executor.http_task import HttpClients
from crontrio.executor.journal import Journal, StartedRun
from crontrio.executor.recovery import LOST_ERROR
from crontrio.executor.refusals import AlreadyAcknowledgedError, NotJournaledError
from crontrio.executor.runs import RunTable
from crontrio.executor.shell_task import ShellProcess
from crontrio.protos import crontrio_pb2 as pb
from testing_support.services import pid_alive, wait_until


def started_record(run_id: str, pid: int = 0) -> StartedRun:
    return StartedRun(
        run_id=run_id,
        started_ms=1,
        host="h",
        executor="e",
        task="shell",
        job_id=1,
        job_name="j",
        scheduled_ms=1,
        attempt=1,
        pid=pid,
    )


def finished(run_id: str) -> pb.RunFinished:
    return pb.RunFinished(run_id=run_id, status=status.SUCCEEDED, started_ms=1, finished_ms=2, output_tail=b"done\n")


def shell(command: str, run_id: str = "") -> pb.RunRequest:
    return pb.RunRequest(
        run_id=run_id or f"9-{uuid.uuid4().hex[:12]}-1",
        job_id=9,
        job_name="start-path",
        scheduled_ms=1,
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
async def registry(journal: Journal) -> AsyncIterator[RunTable]:
    # No HTTP task runs here: the registry only keeps the clients.
    runs = RunTable(ExecutorConfig(kill_grace_seconds=1.0), journal, cast(HttpClients, object()), host="h", address="a")
    yield runs
    runs.kill_all("test over")
    assert await runs.wait_idle(10), "runs still going at the end of the test"


async def events_of(stream: AsyncIterator[pb.RunEvent]) -> list[pb.RunEvent]:
    return [event async for event in stream]


# ---------------------------------------------------------------- the journal's begin_if_new


async def test_begin_if_new_of_an_unknown_run_begins_it_durably(journal: Journal, tmp_path: Path) -> None:
    assert await journal.begin_if_new(started_record("r1")) is None
    with sqlite3.connect(tmp_path / "journal.db") as conn:  # another connection: committed
        assert conn.execute("SELECT run_id, pid FROM started").fetchall() == [("r1", 0)]
    # Claimed again: now known as started, and left as it was.
    known = await journal.begin_if_new(started_record("r1", pid=99))
    assert known is not None and known.started == started_record("r1")


async def test_begin_if_new_of_a_finished_or_acknowledged_run_changes_nothing(journal: Journal) -> None:
    await journal.begin(started_record("done"))
    await journal.put(finished("done"))
    await journal.begin(started_record("acked"))
    await journal.put(finished("acked"))
    assert await journal.ack(["acked"], acked_ms=1234) == 1

    known = await journal.begin_if_new(started_record("done"))
    assert known is not None and known.result == finished("done")
    known = await journal.begin_if_new(started_record("acked"))
    assert known is not None and known.acked_ms == 1234 and known.result is None
    assert await journal.unfinished() == []  # neither was begun again


async def test_concurrent_begins_share_transactions(journal: Journal) -> None:
    before = journal.batches
    claimed = await asyncio.gather(*(journal.begin_if_new(started_record(f"c{i}")) for i in range(300)))
    assert claimed == [None] * 300
    assert journal.batches - before < 30, f"300 concurrent claims took {journal.batches - before} transactions"
    assert len(await journal.unfinished()) == 300


# ---------------------------------------------------------------- the registry's start path


async def test_a_started_run_records_its_pid_before_run_started(registry: RunTable, journal: Journal) -> None:
    request = shell("sleep 30")
    stream = await registry.run(request)
    first = await asyncio.wait_for(anext(aiter(stream)), 20)
    assert first.HasField("started") and first.started.pid > 0
    # What a restarted executor would find to kill after a crash.
    (record,) = await journal.unfinished()
    assert (record.run_id, record.pid) == (request.run_id, first.started.pid)
    assert os.getpgid(first.started.pid) == first.started.pid  # its own group, killable as one
    assert registry.kill(request.run_id)
    rest = await asyncio.wait_for(events_of(stream), 20)
    assert rest[-1].finished.status == status.KILLED
    assert await journal.unfinished() == []


async def test_duplicate_of_a_finished_run_is_replayed_and_of_an_acked_one_refused(registry: RunTable, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    request = shell(f"echo once >> {marker}")
    first = await asyncio.wait_for(events_of(await registry.run(request)), 20)
    assert first[-1].finished.status == status.SUCCEEDED
    again = await asyncio.wait_for(events_of(await registry.run(request)), 20)
    assert [e.WhichOneof("event") for e in again] == ["finished"] and again[-1].finished == first[-1].finished
    assert await registry.ack([request.run_id]) == 1
    with pytest.raises(AlreadyAcknowledgedError):
        await registry.run(request)
    assert marker.read_text() == "once\n"


async def test_a_started_run_left_by_a_crash_becomes_lost_not_rerun(registry: RunTable, journal: Journal, tmp_path: Path) -> None:
    # What a crashed executor leaves behind (recover() not run): a started
    # record, its orphaned process group still going.
    request = shell(f"echo again >> {tmp_path / 'ran'}")
    orphan = subprocess.Popen(["sleep", "30"], start_new_session=True, env={**os.environ, "CRONTRIO_RUN_ID": request.run_id})
    try:
        await journal.begin(started_record(request.run_id, pid=orphan.pid))
        events = await asyncio.wait_for(events_of(await registry.run(request)), 20)
        assert [e.WhichOneof("event") for e in events] == ["finished"]
        lost = events[0].finished
        assert lost.status == status.LOST and lost.error.startswith(LOST_ERROR), lost
        assert lost.pid == orphan.pid and f"process group {orphan.pid} was still running and was killed" in lost.error
        assert await asyncio.to_thread(orphan.wait, 10) == -signal.SIGTERM
        assert not (tmp_path / "ran").exists()
        assert await journal.unfinished() == [] and await journal.results([request.run_id]) == [lost]
    finally:
        if pid_alive(orphan.pid):
            orphan.kill()
        orphan.wait()


async def test_a_start_that_cannot_be_journaled_is_refused_not_run(
    registry: RunTable, journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Refused (not a failed result): the dispatcher can send it elsewhere,
    # and nothing here claims a run that has no durable record.
    async def broken_begin(run: StartedRun) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(journal, "begin_if_new", broken_begin)
    marker = tmp_path / "ran"
    request = shell(f"echo ran >> {marker}")
    with pytest.raises(NotJournaledError, match=r"not started: this executor cannot journal it \(disk I/O error\)"):
        await registry.run(request)
    assert registry.running_count == 0 and not marker.exists()
    assert (await registry.list_results([request.run_id]))[:2] == ([], [])


async def test_a_start_whose_run_cannot_even_be_looked_up_is_refused(
    registry: RunTable, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(journal, "begin_if_new", broken)
    monkeypatch.setattr(journal, "lookup", broken)
    request = shell("echo never")
    with pytest.raises(NotJournaledError):
        await registry.run(request)
    assert registry.running_count == 0


async def test_stdout_and_stderr_keep_their_order_on_one_pipe(registry: RunTable) -> None:
    command = "echo one; echo two >&2; echo three; echo four >&2"
    events = await asyncio.wait_for(events_of(await registry.run(shell(command))), 20)
    assert events[-1].finished.output_tail == b"one\ntwo\nthree\nfour\n"


# ---------------------------------------------------------------- spawning


async def test_a_spawn_cancelled_midway_kills_and_reaps_its_process(monkeypatch: pytest.MonkeyPatch) -> None:
    reaped: list[subprocess.Popen[bytes]] = []
    original_reap = shell_task._reap

    def recording_reap(popen: subprocess.Popen[bytes]) -> None:
        original_reap(popen)
        reaped.append(popen)

    monkeypatch.setattr(shell_task, "_reap", recording_reap)
    # Hold every spawning thread so that the spawn is still queued when its
    # caller is cancelled, then let it happen.
    release = threading.Event()
    held = [shell_task._spawner.run(lambda: release.wait(20), lambda _: None) for _ in range(shell_task._SPAWN_THREADS)]
    submitted: list[object] = []
    submit = shell_task._spawner.run

    def recording_submit(call: Any, abandoned: Any = None) -> Any:
        submitted.append(call)
        return submit(call, abandoned)

    monkeypatch.setattr(shell_task._spawner, "run", recording_submit)
    starting = asyncio.create_task(ShellProcess.start("sleep 30", workdir="", env=dict(os.environ), on_output=lambda data: None))
    await wait_until(lambda: submitted, 10, "the spawn to be submitted")
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    release.set()
    await asyncio.gather(*held)
    await wait_until(lambda: reaped, 10, "the abandoned shell to be killed and reaped")
    assert reaped[0].returncode == -signal.SIGKILL
