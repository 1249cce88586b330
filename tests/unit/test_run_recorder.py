"""RunRecorder: grouped writes, and a warning when they fall behind."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from crontrio.common.model import RunRecord, make_run_id
from crontrio.dispatcher import recorder
from crontrio.dispatcher.recorder import RecordDroppedError, RunRecorder
from testing_support.services import wait_until


class RecordingStore:
    """Stands in for the store's write_runs only (a recorder.RunWriter):
    records each batch, each taking ``seconds`` of the recorder's clock,
    like a slow database. A write is under way (``writing``) until the
    test lets writes finish (``finish``), so the caller can queue more
    meanwhile, as during a real commit."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds
        self.batches: list[tuple[int, int]] = []
        self.writing = asyncio.Event()
        self.finish = asyncio.Event()

    async def write_runs(self, inserts: Sequence[RunRecord], updates: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]:
        self.writing.set()
        await self.finish.wait()
        self.clock.now += self.seconds
        self.batches.append((len(inserts), len(updates)))
        return [True] * len(inserts)


class Clock:
    """The recorder's clock (a `common.clock.Clock`), moved only by the fake database."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def now_ms(self) -> int:
        return int(self.now * 1000)


async def _write_two_batches(db_seconds: float) -> tuple[RunRecorder, RecordingStore]:
    clock = Clock()
    store = RecordingStore(clock, db_seconds)
    rec = RunRecorder(store, batch_ms=0, clock=clock)
    rec.start()
    first = rec.update("r1", status="running")
    await asyncio.wait_for(store.writing.wait(), 5)  # the first commit is under way
    second = rec.update("r2", status="running")  # waits for the first commit, then its own
    store.finish.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    await rec.close()
    return rec, store


async def test_writes_that_wait_too_long_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="crontrio.dispatcher.recorder"):
        rec, store = await _write_two_batches(db_seconds=6.0)
    assert store.batches == [(0, 1), (0, 1)]
    assert rec.behind_seconds == 12.0  # the second write waited for two commits
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # Once, not for every late batch: the first one was 6 s behind, the second 12 s.
    assert len(warnings) == 1
    assert "run history writes are" in warnings[0] and "cannot keep up" in warnings[0]


async def test_writes_in_time_are_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="crontrio.dispatcher.recorder"):
        rec, store = await _write_two_batches(db_seconds=2.0)
    assert store.batches == [(0, 1), (0, 1)]
    assert rec.behind_seconds < recorder.BEHIND_WARN_SECONDS
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


class KeepingStore:
    """write_runs that keeps every update it was given, batch by batch."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, dict[str, Any]]]] = []

    async def write_runs(self, inserts: Sequence[RunRecord], updates: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]:
        self.batches.append(list(updates))
        return [True] * len(inserts)

    def updates(self) -> list[tuple[str, dict[str, Any]]]:
        return [update for batch in self.batches for update in batch]


async def test_a_start_soon_followed_by_the_end_is_one_write_with_both() -> None:
    store = KeepingStore()
    rec = RunRecorder(store, batch_ms=0)
    rec.start()
    rec.update_soon("r1", status="running", started_ms=5, pid=7)
    await asyncio.wait_for(rec.update("r1", status="succeeded", finished_ms=9), 5)
    await rec.close()
    assert store.updates() == [("r1", {"status": "succeeded", "started_ms": 5, "pid": 7, "finished_ms": 9})]


async def test_a_start_with_no_end_is_written_after_the_wait_and_at_close() -> None:
    store = KeepingStore()
    rec = RunRecorder(store, batch_ms=0)
    rec._soon_seconds = 0.05  # the wait under test, short
    rec.start()
    rec.update_soon("r1", status="running", started_ms=5)
    rec.update_soon("r1", pid=7)  # merged into the held one
    await wait_until(lambda: store.updates(), 5, "the held start to be written")
    assert store.updates() == [("r1", {"status": "running", "started_ms": 5, "pid": 7})]
    rec._soon_seconds = 3600.0  # held for an hour: close must write it all the same
    rec.update_soon("r2", status="running")
    await asyncio.wait_for(rec.close(), 5)
    assert store.updates()[-1] == ("r2", {"status": "running"})


class GatedStore:
    """write_runs that waits for ``gate`` before each batch, keeping the run ids in order."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.written: list[str] = []

    async def write_runs(self, inserts: Sequence[RunRecord], updates: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]:
        await self.gate.wait()
        self.written += [r.run_id for r in inserts]
        return [True] * len(inserts)


def _firing(n: int) -> RunRecord:
    run_id = make_run_id(1, n * 1000, 1)
    return RunRecord(run_id=run_id, job_id=1, job_name="j", scheduled_ms=n * 1000, attempt=1, status="pending")


async def test_firings_beyond_the_backlog_wait_their_turn_and_a_cancelled_one_passes_its_room_on() -> None:
    store = GatedStore()
    rec = RunRecorder(store, batch_ms=0, max_backlog=1)
    rec.start()
    far = rec._clock.now_ms() + 60_000
    inserts = {n: asyncio.ensure_future(rec.insert(_firing(n), deadline_ms=far)) for n in range(4)}
    await wait_until(lambda: rec.backlog == 1, 5, "the first insert to be written")
    inserts[1].cancel()  # gave up while waiting: its place goes to the next
    await wait_until(inserts[1].done, 5, "the cancelled insert to end")
    assert rec.backlog == 1 and not any(f.done() for n, f in inserts.items() if n != 1)
    store.gate.set()
    assert await asyncio.wait_for(asyncio.gather(inserts[0], inserts[2], inserts[3]), 5) == [True] * 3
    await rec.close()
    assert store.written == [_firing(n).run_id for n in (0, 2, 3)]


async def test_firings_dropped_while_the_database_is_stuck_leave_no_trace_in_memory() -> None:
    store = GatedStore()  # never opens: the database is stuck
    clock = Clock()
    rec = RunRecorder(store, batch_ms=0, max_backlog=1, clock=clock)
    rec.start()
    first = asyncio.ensure_future(rec.insert(_firing(0), deadline_ms=clock.now_ms() + 60_000))
    await wait_until(lambda: rec.backlog == 1, 5, "the first insert to be written")
    soon = clock.now_ms() + 20  # real timers fire at the recorder's clock's deadline
    dropped = [asyncio.ensure_future(rec.insert(_firing(n), deadline_ms=soon)) for n in range(1, 200)]
    await wait_until(lambda: len(rec._room_waiters) == 199, 5, "199 firings waiting for room")
    clock.now += 1.0  # past their deadline
    await wait_until(lambda: all(f.done() for f in dropped), 5, "the waiting firings to be dropped")
    assert all(isinstance(f.exception(), RecordDroppedError) for f in dropped)
    assert len(rec._room_waiters) == 0 and len(rec._room_deadlines) == 0
    first.cancel()
    store.gate.set()
    await rec.close()
