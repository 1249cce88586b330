"""Runs held for their scheduled instant share one timer per instant
(executor/held_runs.py Instants)."""

from __future__ import annotations

import asyncio

import pytest

from crontrio.executor import held_runs
from crontrio.executor.held_runs import Instants
from crontrio.executor.run_handle import RunHandle
from crontrio.protos import crontrio_pb2


async def test_waits_for_one_instant_share_one_timer_and_wake_in_one_pass() -> None:
    instants = Instants()
    wakes = [instants.wait(1_000, 150) for _ in range(500)]
    later = instants.wait(2_000, 400)
    assert len(instants) == 2  # one timer per distinct instant, not per run
    await asyncio.wait_for(wakes[0], 10)
    # The instant's timer woke every run held for it, in the same callback.
    assert all(wake.done() for wake in wakes)
    assert not later.done()
    assert len(instants) == 1
    await asyncio.wait_for(later, 10)
    assert len(instants) == 0


async def test_leaving_keeps_the_timer_for_the_others_and_the_last_stops_it() -> None:
    instants = Instants()
    stopped, kept = instants.wait(1_000, 100), instants.wait(1_000, 100)
    instants.leave(1_000, stopped)  # its run was killed while held
    assert len(instants) == 1
    await asyncio.wait_for(kept, 10)
    assert not stopped.done()  # left before the instant: not woken

    alone = instants.wait(3_000, 60_000)
    instants.leave(3_000, alone)
    assert len(instants) == 0  # the last to leave cancelled the timer
    instants.leave(3_000, alone)  # leaving twice (after the instant, say) is harmless


async def test_the_runs_of_an_instant_wake_in_the_order_they_came() -> None:
    instants = Instants()
    woken: list[int] = []
    wakes = [instants.wait(1_000, 50) for _ in range(200)]
    for i, wake in enumerate(wakes):
        wake.add_done_callback(lambda _, i=i: woken.append(i))
    await asyncio.wait_for(asyncio.gather(*wakes), 10)
    assert woken == list(range(200))


async def test_a_held_run_waits_for_its_instant_as_measured_when_it_starts_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    # Its start is journaled between its arrival and its wait (with the rest
    # of its batch): a hold measured on arrival would set the instant's
    # timer late by as long as that write took.
    instant = 1_800_000_000_000
    monkeypatch.setattr(held_runs, "now_ms", lambda: instant - 200)
    asked: list[tuple[int, int]] = []

    class Recording(Instants):
        def wait(self, instant_ms: int, hold: int) -> asyncio.Future[None]:
            asked.append((instant_ms, hold))
            return super().wait(instant_ms, hold)

    shell = crontrio_pb2.ShellTask(command="true")
    request = crontrio_pb2.RunRequest(run_id="7-1-1", job_id=7, scheduled_ms=instant, shell=shell)
    assert await asyncio.wait_for(held_runs.wait_until_due(RunHandle(request, 1024), Recording()), 10)
    assert asked == [(instant, 200)]

    # Journaled past its instant: it starts at once.
    monkeypatch.setattr(held_runs, "now_ms", lambda: instant + 30)
    assert await asyncio.wait_for(held_runs.wait_until_due(RunHandle(request, 1024), Recording()), 10)
    assert asked[-1] == (instant, 0)
