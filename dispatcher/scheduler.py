"""The loop: fire what is due, then sleep until the next due time or a change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from crontrio.common.clock import now_ms
from crontrio.common.model import OVERLAP_ALLOW, Job
from crontrio.common.schedule import Schedule

log = logging.getLogger(__name__)

FireFn = Callable[[Job, int], Coroutine[Any, Any, None]]
SpawnFn = Callable[[Coroutine[Any, Any, None], str], None]
ClaimFn = Callable[[list[tuple[Job, int]]], Coroutine[Any, Any, list[tuple[Job, int]]]]
# How late a firing may still start. Beyond this the process was frozen or
# starved, and firing a backlog all at once would do more harm than skipping.
MAX_CATCH_UP_MS = 60_000
# The longest sleep; only a safety net for a clock that jumps (NTP step).
MAX_SLEEP_SECONDS = 30.0


class Scheduler:
    """Owns the Schedule and starts one task per due firing.

    No fixed polling: it sleeps exactly until the earliest fire time, and
    `wake()` (called on any job change) makes it look again at once.
    """

    def __init__(
        self,
        schedule: Schedule,
        fire: FireFn,
        clock: Callable[[], int] = now_ms,
        dispatch_ahead_ms: int = 0,
        spawner: TaskSpawner | None = None,
        batch: BatchFiring | None = None,
    ) -> None:
        self.schedule = schedule
        # The one spawner of the dispatcher (dispatcher/app.py): every firing task goes through it.
        self.spawner = spawner if spawner is not None else TaskSpawner()
        self.spawn = self.spawner.spawn
        self._fire = fire
        # Without it, each firing due now is claimed on its own by `fire`.
        self._batch = batch
        # Firings popped in this pass, to be claimed together (see _fire_now).
        self._to_claim: list[tuple[Job, int]] = []
        self._clock = clock
        # Firings of jobs that allow overlap are claimed, recorded and sent
        # this long before their time; the executor holds each one until its
        # scheduled instant. When 1,000 jobs fire in the same second, the
        # per-firing work (about half a millisecond each) is then done before
        # the second, not during it. Other overlap policies must look at the
        # previous run at the scheduled time, so those firings wait for it.
        # (The whole of dispatch ahead: docs/ARCHITECTURE.md, "Dispatch ahead".)
        self.dispatch_ahead_ms = dispatch_ahead_ms
        self._wakeup = asyncio.Event()
        self._stopping = False

    @property
    def in_flight(self) -> set[asyncio.Task[None]]:
        return self.spawner.in_flight

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        log.info("scheduler running with %d jobs", len(self.schedule))
        while not self._stopping:
            # Cleared before looking, so a change made while we fire is never missed.
            self._wakeup.clear()
            now = self._clock()
            due, dropped = self.schedule.pop_due(now + self.dispatch_ahead_ms, MAX_CATCH_UP_MS)
            if dropped:
                log.warning("dropped %d firings more than %d s late (was the process stopped?)", dropped, MAX_CATCH_UP_MS // 1000)
            for job, fire_ms in due:
                self._start(job, fire_ms)
            next_ms = self.schedule.next_due_ms()
            if next_ms is not None:
                next_ms -= self.dispatch_ahead_ms
            delay = MAX_SLEEP_SECONDS if next_ms is None else min(MAX_SLEEP_SECONDS, (next_ms - self._clock()) / 1000)
            if delay <= 0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=delay)
        log.info("scheduler stopped")

    def _start(self, job: Job, fire_ms: int) -> None:
        if job.overlap_policy == OVERLAP_ALLOW or fire_ms <= self._clock():
            self._fire_now(job, fire_ms)
        else:
            self.spawn(self._fire_at(job, fire_ms), f"fire-{job.id}-{fire_ms}")

    def _fire_now(self, job: Job, fire_ms: int) -> None:
        """Fire now. With batch claims, the firings popped in one pass of the
        loop are claimed in one call: the first one spawns the task that
        claims them, which runs once the loop yields (at its sleep), by when
        the whole pass has been added."""
        if self._batch is None:
            self.spawn(self._fire(job, fire_ms), f"fire-{job.id}-{fire_ms}")
            return
        if not self._to_claim:
            self.spawn(self._claim_batch(self._batch), f"claim-{job.id}-{fire_ms}")
        self._to_claim.append((job, fire_ms))

    async def _claim_batch(self, batch: BatchFiring) -> None:
        firings, self._to_claim = self._to_claim, []
        for job, fire_ms in await batch.claim(firings):
            self.spawn(batch.fire_claimed(job, fire_ms), f"fire-{job.id}-{fire_ms}")

    async def _fire_at(self, job: Job, fire_ms: int) -> None:
        """Fire at the scheduled instant (not ahead): see dispatch_ahead_ms."""
        delay = (fire_ms - self._clock()) / 1000
        if delay > 0:
            await asyncio.sleep(delay)
        await self._fire(job, fire_ms)


@dataclass(frozen=True)
class BatchFiring:
    """Firing due firings as a batch: `claim` takes the firings due together
    and returns the ones won (dispatcher/firing.py: FiringRunner.claim deals
    with the others), each of which is then started with `fire_claimed`."""

    claim: ClaimFn
    fire_claimed: FireFn


class TaskSpawner:
    """Runs firing work (firings, retries, queued firings, dependents,
    catch-up, takeovers) as tasks the graceful shutdown waits for."""

    def __init__(self) -> None:
        self.in_flight: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self.in_flight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("firing task %s crashed: %r", task.get_name(), exc, exc_info=exc)
