"""The loop: fire what is due, then sleep until the next due time or a change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from crontrio.common.clock import now_ms
from crontrio.common.config import MAX_DISPATCH_AHEAD_MS
from crontrio.common.model import OVERLAP_ALLOW, Job
from crontrio.common.schedule import Schedule
from crontrio.dispatcher.ahead_cost import AheadCost

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
        max_firings_ahead: int = 10_000,
        ahead_cost: AheadCost | None = None,
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
        # at least this long before their time; the executor holds each one
        # until its scheduled instant. When 1,000 jobs fire in the same
        # second, the per-firing work (about half a millisecond each) is then
        # done before the second, not during it. Other overlap policies must
        # look at the previous run at the scheduled time, so those firings
        # wait for it. A bigger burst gets a longer lead (`horizon`).
        # (The whole of dispatch ahead: docs/ARCHITECTURE.md, "Dispatch ahead".)
        self.dispatch_ahead_ms = dispatch_ahead_ms
        # What is due within this is popped each pass: the lead, moved off
        # the whole seconds (`between_instants`).
        self._ahead_ms = between_instants(dispatch_ahead_ms) if dispatch_ahead_ms > 0 else 0
        # The lead grows with the burst up to MAX_DISPATCH_AHEAD_MS and while
        # at most this many firings are held ahead (started ahead of their
        # instant, which has not come): each costs memory here and on its executor.
        self.max_firings_ahead = max_firings_ahead
        self.ahead_cost = ahead_cost if ahead_cost is not None else AheadCost()
        # Instant -> firings started ahead for it (those past are dropped as time goes).
        self._held: dict[int, int] = {}
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
            horizon = self.horizon(now)
            due, dropped = self.schedule.pop_due(now + self._ahead_ms, MAX_CATCH_UP_MS, horizon.until_ms, _allows_overlap)
            if dropped:
                log.warning("dropped %d firings more than %d s late (was the process stopped?)", dropped, MAX_CATCH_UP_MS // 1000)
            for job, fire_ms in due:
                self._start(job, fire_ms)
            self.ahead_cost.batch(sum(1 for job, fire_ms in due if fire_ms > now and _allows_overlap(job)))
            next_ms = self.schedule.next_due_ms()
            if next_ms is not None:
                next_ms -= self._ahead_ms
            if horizon.wake_ms is not None:
                next_ms = horizon.wake_ms if next_ms is None else min(next_ms, horizon.wake_ms)
            delay = MAX_SLEEP_SECONDS if next_ms is None else min(MAX_SLEEP_SECONDS, (next_ms - self._clock()) / 1000)
            if delay <= 0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=delay)
        log.info("scheduler stopped")

    def horizon(self, now: int) -> Horizon:
        """How far ahead to start overlap=allow firings now, beyond
        dispatch_ahead_ms: an instant T is started lead(T) before it, with
        lead(T) = dispatch_ahead_ms + (firings due at T) x per-firing cost,
        rounded up to half a second past a whole one (`between_instants`),
        at most MAX_DISPATCH_AHEAD_MS, and only while the firings held ahead
        stay within max_firings_ahead. Also when to look again for a later
        instant whose lead has not come yet (None: nothing to wait for)."""
        base = now + self._ahead_ms
        if self.dispatch_ahead_ms <= 0:
            return Horizon(base, None)  # dispatch ahead is off: every firing at its time
        for instant in [t for t in self._held if t <= now]:
            del self._held[instant]
        room = self.max_firings_ahead - sum(self._held.values())
        per_firing = self.ahead_cost.per_firing_ms()
        until, wake, taken = base, None, 0
        # No instant further than the longest lead the room left allows can start now.
        window = min(MAX_DISPATCH_AHEAD_MS, between_instants(self.dispatch_ahead_ms + max(room, 0) * per_firing))
        counts, beyond = self.schedule.due_counts(base, now + math.ceil(window), _allows_overlap, max(room, 0))
        if beyond is not None:
            # The next instant past the window: its lead cannot come before it is in the window.
            wake = beyond - math.ceil(window)
        for instant, count in counts:
            lead = min(MAX_DISPATCH_AHEAD_MS, between_instants(self.dispatch_ahead_ms + count * per_firing))
            if taken + count > room:
                # Held firings are at their cap: look again when some start.
                held_next = min((t for t in self._held if t > now), default=None)
                if held_next is not None:
                    wake = held_next if wake is None else min(wake, held_next)
                break
            taken += count
            if instant - lead <= now:
                until = instant  # and every earlier instant with it
            else:
                start = math.ceil(instant - lead)
                wake = start if wake is None else min(wake, start)
        return Horizon(until, wake)

    def _start(self, job: Job, fire_ms: int) -> None:
        if job.overlap_policy == OVERLAP_ALLOW or fire_ms <= self._clock():
            if fire_ms > self._clock() and self.dispatch_ahead_ms > 0:
                self._held[fire_ms] = self._held.get(fire_ms, 0) + 1
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


@dataclass(frozen=True)
class Horizon:
    """Start overlap=allow firings due by `until_ms` now; look again at
    `wake_ms` for a burst whose lead has not come yet."""

    until_ms: int
    wake_ms: int | None


def between_instants(lead_ms: float) -> int:
    """``lead_ms`` rounded up so that an instant's batch is sent half-way
    between two whole seconds (T - lead ends in .500).

    Cron instants fall on whole seconds, and at one the executors are busy
    starting that instant's held runs. A batch for a later instant sent
    right then is read and journaled in the middle of those starts: with
    1,000 every-second HTTP jobs and the default lead of 1 s (plus the
    burst's 0.1 s), each second's batch for the next arrived as the
    executor started this second's runs, and the server saw them p99 360 ms
    late; sent half a second off the instants, p99 188 ms
    (bench/RESULTS.md)."""
    return max(500, math.ceil((lead_ms - 500) / 1000) * 1000 + 500)


def _allows_overlap(job: Job) -> bool:
    return job.overlap_policy == OVERLAP_ALLOW


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
