"""RunRecorder: grouped writes, and a warning when they fall behind."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from dispatcher import recorder
from dispatcher.recorder import RunRecorder


class SlowStore:
    """Stands in for SqlStore.write_runs only: records each batch."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []

    def write_runs(self, inserts: list[Any], updates: list[Any]) -> list[bool]:
        self.batches.append((len(inserts), len(updates)))
        return [True] * len(inserts)


class SlowDb:
    """Runs the store call after ``seconds``, like a slow database would."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        await asyncio.sleep(self.seconds)
        return fn(*args)


async def _write_two_batches(db_seconds: float) -> tuple[RunRecorder, SlowStore]:
    store = SlowStore()
    rec = RunRecorder(store, SlowDb(db_seconds), batch_ms=0)  # type: ignore[arg-type]
    rec.start()
    first = rec.update("r1", status="running")
    await asyncio.sleep(0)  # the first commit is under way
    second = rec.update("r2", status="running")  # waits for the first commit, then its own
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    await rec.close()
    return rec, store


async def test_writes_that_wait_too_long_are_reported(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(recorder, "BEHIND_WARN_SECONDS", 0.1)
    with caplog.at_level(logging.WARNING, logger="dispatcher.recorder"):
        rec, store = await _write_two_batches(db_seconds=0.15)
    assert store.batches == [(0, 1), (0, 1)]
    assert rec.behind_seconds >= 0.25  # the second write waited for two commits
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # Once, not for every late batch: the first one was 0.15 s behind, the second 0.3 s.
    assert len(warnings) == 1
    assert "run history writes are" in warnings[0] and "cannot keep up" in warnings[0]


async def test_writes_in_time_are_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dispatcher.recorder"):
        rec, store = await _write_two_batches(db_seconds=0.01)
    assert store.batches == [(0, 1), (0, 1)]
    assert rec.behind_seconds < recorder.BEHIND_WARN_SECONDS
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
