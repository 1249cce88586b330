"""executor.workers: blocking calls on threads, outcomes on the loop."""

from __future__ import annotations

import asyncio
import functools
import threading

import pytest

from crontrio.executor.workers import Workers


async def test_results_and_errors_reach_the_caller_in_order_on_one_thread() -> None:
    workers = Workers(1, "test")
    seen: list[int] = []

    def record(i: int) -> int:
        seen.append(i)
        return i * 2

    def fail() -> None:
        raise ValueError("boom")

    try:
        results = await asyncio.gather(*(workers.run(functools.partial(record, i)) for i in range(50)))
        assert results == [i * 2 for i in range(50)]
        assert seen == list(range(50))  # one thread: the order the calls were made
        with pytest.raises(ValueError, match="boom"):
            await workers.run(fail)
    finally:
        workers.shutdown()


async def test_a_result_nobody_waits_for_any_more_is_handed_to_abandoned() -> None:
    workers = Workers(1, "test")
    release = threading.Event()
    abandoned: list[str] = []
    try:
        blocker = workers.run(lambda: release.wait(10))
        orphan = workers.run(lambda: "resource", abandoned.append)
        orphan.cancel()
        release.set()
        await blocker
        # Delivered after the orphan's outcome (one thread, callbacks in order).
        await asyncio.wait_for(workers.run(lambda: None), 10)
        assert abandoned == ["resource"]
    finally:
        workers.shutdown()


async def test_shutdown_finishes_queued_calls_and_stops_the_threads() -> None:
    workers = Workers(3, "test")
    done: list[int] = []
    await workers.run(lambda: None)
    threads = list(workers._threads)
    assert len(threads) == 3 and all(t.is_alive() and t.daemon for t in threads)
    for i in range(10):
        workers.detach(functools.partial(done.append, i))
    workers.shutdown()
    assert sorted(done) == list(range(10))
    assert not any(t.is_alive() for t in threads)
