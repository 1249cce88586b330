"""Takes over firings whose claim winner died before they reached an executor.

The Redis claim is a cheap pre-filter, not the record: a dispatcher can win
a claim and be killed before it inserts the run row. Everyone else dropped
that firing, so without this it would be missed. Losers therefore re-check,
shortly after, that a run row exists; if none does, they fire it after all.
The run table's unique key still lets only one of them run it.

A winner can also die after recording the run and before sending it (with
dispatch_ahead_ms, that is the second before the firing's time). So losers
look once more just after the scheduled time: a run still pending that no
executor has reported starting, whose dispatcher is dead (peers.py), is
adopted (a conditional update of its owner, so one adopter wins and the
monitor leaves it alone) and carried on: followed on the executor that
already has it, or sent. Without this the monitor would settle it as lost
and retry it only once the dead dispatcher's registration expired (seconds).
All the runs one look finds are adopted together (`Store.adopt_runs`: one
transaction, an UPDATE per few hundred runs) and carried on together
(`FiringRunner.adopt`: one question per executor about who has which),
since a peer killed in a burst leaves thousands of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from crontrio.common.clock import now_ms
from crontrio.common.model import Job, RunRecord, iso_ms
from crontrio.common.store.async_store import AsyncStore
from crontrio.dispatcher.routing import fans_out

log = logging.getLogger(__name__)
# How long a claim winner has to record its run; it normally takes one
# group commit (tens of milliseconds).
RECORD_DEADLINE_SECONDS = 0.5
# How long after its scheduled time a recorded run may go unstarted before
# its dispatcher is asked whether it is still there. A live one answers and
# keeps its run (a busy burst legitimately starts runs later than this).
START_DEADLINE_SECONDS = 0.25

RECORDED, STARTED = "recorded", "started"


class TakeoverWatch:
    def __init__(
        self,
        store: AsyncStore,
        take_over: Callable[[Job, int], Coroutine[Any, Any, None]],
        spawn: Callable[[Coroutine[Any, Any, None], str], None],
        *,
        dispatcher_id: str = "",
        alive: Callable[[str], Awaitable[bool]] | None = None,
        adopt: Callable[[list[tuple[Job, RunRecord]]], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self._store = store
        self._take_over = take_over
        self._spawn = spawn
        # Without these (no way to tell a dead peer), recorded runs are left
        # to the monitor's reconciliation.
        self._me = dispatcher_id
        self._alive = alive
        self._adopt = adopt
        # (when to look, tie-break, which look, job, scheduled_ms), a heap.
        self._pending: list[tuple[float, int, str, Job, int]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._sleeping_until = math.inf
        self.taken_over = 0
        self.adopted = 0

    def watch(self, job: Job, scheduled_ms: int) -> None:
        """Another dispatcher claimed this firing: make sure it gets recorded."""
        self._later(time.monotonic() + RECORD_DEADLINE_SECONDS, RECORDED, job, scheduled_ms)

    def _later(self, at: float, look: str, job: Job, scheduled_ms: int) -> None:
        heapq.heappush(self._pending, (at, next(self._seq), look, job, scheduled_ms))
        if at < self._sleeping_until:  # at 1,000 firings a second, only then
            self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            now = time.monotonic()
            if not self._pending or self._pending[0][0] > now:
                self._sleeping_until = self._pending[0][0] if self._pending else math.inf
                timeout = None if not self._pending else self._sleeping_until - now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                self._sleeping_until = -math.inf  # awake: no need to be woken
                continue
            due: dict[str, list[tuple[Job, int]]] = {RECORDED: [], STARTED: []}
            while self._pending and self._pending[0][0] <= now:
                _, _, look, job, ms = heapq.heappop(self._pending)
                due[look].append((job, ms))
            for look, check in ((RECORDED, self._check_recorded), (STARTED, self._check_started)):
                if not due[look]:
                    continue
                try:
                    await check(due[look])
                except Exception as exc:  # noqa: BLE001 - the store may be briefly unreachable; try again
                    log.warning("checking %d claimed firings failed, will retry: %s", len(due[look]), exc)
                    for job, ms in due[look]:
                        self._later(time.monotonic() + RECORD_DEADLINE_SECONDS, look, job, ms)

    async def _check_recorded(self, firings: list[tuple[Job, int]]) -> None:
        low = min(ms for _, ms in firings)
        high = max(ms for _, ms in firings) + 1
        recorded = await self._store.firings_between(low, high)
        for job, ms in firings:
            if (job.id, ms) not in recorded:
                self.taken_over += 1
                log.warning(
                    "job %s firing %s was claimed by another dispatcher but never recorded (did it die?): taking it over",
                    job.name,
                    iso_ms(ms),
                )
                self._spawn(self._take_over(job, ms), f"takeover-{job.id}-{ms}")
            elif self._alive is not None and not fans_out(job.route_strategy):
                # Recorded: look again once it should have started.
                at = time.monotonic() + max(0.0, (ms - now_ms()) / 1000) + START_DEADLINE_SECONDS
                self._later(at, STARTED, job, ms)

    async def _check_started(self, firings: list[tuple[Job, int]]) -> None:
        assert self._alive is not None and self._adopt is not None
        low = min(ms for _, ms in firings)
        high = max(ms for _, ms in firings) + 1
        unstarted = await self._store.unstarted_runs_between(low, high, self._me)
        if not unstarted:
            return
        jobs = {(job.id, ms): job for job, ms in firings}
        owners = {run.dispatcher for run in unstarted if (run.job_id, run.scheduled_ms) in jobs}
        dead = {owner for owner in owners if not await self._alive(owner)}
        candidates = {
            run.run_id: (jobs[(run.job_id, run.scheduled_ms)], run)
            for run in unstarted
            if (run.job_id, run.scheduled_ms) in jobs and run.dispatcher in dead
        }
        if not candidates:
            return
        # One conditional update for the batch: those another dispatcher (or
        # the monitor) got first are not among the won.
        won = await self._store.adopt_runs([(run_id, run.dispatcher) for run_id, (_, run) in candidates.items()], self._me)
        adopted = [candidates[run_id] for run_id in sorted(won)]
        if adopted:
            self.adopted += len(adopted)
            self._spawn(self._adopt(adopted), f"adopt-{len(adopted)}-{adopted[0][1].run_id}")
