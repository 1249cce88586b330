"""Keeps the dispatcher's Schedule equal to the jobs in the store.

The store's change log (fed by triggers, so plain-SQL edits count) says
which jobs changed since a revision. The monitor nudges us when the revision
moves; we also look on our own every `fallback_seconds`, so a lost nudge or
a dead monitor costs latency, never a missed change.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import time
from collections.abc import Callable, Iterator

from crontrio.common.cron import CronSchedule
from crontrio.common.errors import ValidationError
from crontrio.common.jobs import validate_job_schedule
from crontrio.common.model import Job, iso_ms
from crontrio.common.schedule import Schedule
from crontrio.common.store.async_store import AsyncStore

log = logging.getLogger(__name__)
# A dispatcher that could not read the change log for this long may have
# missed pruned entries: it reloads everything instead.
FULL_RELOAD_AFTER_SECONDS = 600


class JobSync:
    def __init__(
        self,
        store: AsyncStore,
        schedule: Schedule,
        on_change: Callable[[], None],
        clock: Callable[[], int],
        on_unscheduled: Callable[[int, str], object] | None = None,
        on_edited: Callable[[Job, Callable[[int], bool]], object] | None = None,
    ) -> None:
        self._store = store
        self._schedule = schedule
        self._on_change = on_change
        self._clock = clock
        self._lock = asyncio.Lock()
        self.revision = 0
        self._last_sync = time.monotonic()
        self.invalid: dict[int, str] = {}  # job id -> why it is not scheduled
        self._announce = True  # log each newly scheduled job (not during a full load)
        # True while a full load applies every job: the loop is woken once, after it, not once per job.
        self._bulk = False
        self.jobs: dict[int, Job] = {}  # every valid, enabled job (scheduled or run only after others)
        self._downstream: dict[str, dict[int, str]] = {}  # upstream name -> {job id: condition}
        # Every stored job's upstreams, paused and invalid ones too (for
        # "who depends on this job?" before a delete, not for firing).
        self._dependents: dict[str, set[int]] = {}  # upstream name -> job ids
        self._upstreams: dict[int, tuple[str, ...]] = {}  # job id -> upstream names
        # Called with (job id, why) when a job stops being scheduled (paused,
        # made invalid, deleted): firings of it already sent ahead are cancelled.
        self.on_unscheduled: Callable[[int, str], object] = on_unscheduled or (lambda _job_id, _why: None)
        # Called with (the job, does its schedule fire at this instant?) when
        # a scheduled job is stored again, changed or not: firings of it
        # already sent ahead go on as it is now (or are cancelled).
        self.on_edited: Callable[[Job, Callable[[int], bool]], object] = on_edited or (lambda _job, _fires_at: None)

    def apply(self, job: Job, now_ms: int | None = None) -> None:
        """Put one stored job into the schedule (or take it out).

        `now_ms` is when its next firing is counted from (default: the clock).
        """
        self._index_upstreams(job.id, tuple(dep.job for dep in job.after) if job.after else ())
        if not job.enabled:
            self._drop(job.id)
            self.invalid.pop(job.id, None)
            if self._schedule.remove(job.id):
                log.info("job %s paused: no longer scheduled", job.name)
            self.on_unscheduled(job.id, f"job {job.name} was paused before this firing's scheduled time")
            return
        is_new = False
        try:
            valid, cron = validate_job_schedule(job)
            if cron is not None:
                is_new = self._schedule.job(job.id) is None
                self._schedule.upsert(valid, cron, self._clock() if now_ms is None else now_ms)
        except Exception as exc:  # noqa: BLE001 - one bad job must not stop the others (any error, not only ValidationError)
            self._invalid(job, str(exc) if isinstance(exc, ValidationError) else f"job: cannot be scheduled: {exc!r}")
            return
        self.invalid.pop(job.id, None)
        self._keep(valid)
        if cron is None:  # runs only after its upstreams
            if self._schedule.remove(job.id):
                self.on_unscheduled(job.id, f"job {job.name} no longer has a schedule of its own")
            return
        if not is_new:
            self.on_edited(valid, functools.partial(_fires_at, cron))
        if not self._bulk:
            self._on_change()  # the new fire time may be earlier than the one the loop sleeps towards
        if is_new and self._announce:
            log.info(
                "job %s scheduled (%s %s), next at %s",
                job.name,
                job.spec,
                job.timezone,
                iso_ms(self._schedule.next_fire_ms(job.id)),
            )

    def _invalid(self, job: Job, reason: str) -> None:
        # Logged when the reason changes, not at every sync of an unchanged row.
        if self.invalid.get(job.id) != reason:
            log.error("job %s (id %d) is not scheduled: %s", job.name, job.id, reason)
        self.invalid[job.id] = reason
        self._drop(job.id)
        self._schedule.remove(job.id)
        self.on_unscheduled(job.id, f"job {job.name} became invalid before this firing's scheduled time: {reason}")

    def _keep(self, job: Job) -> None:
        self._drop(job.id)
        self.jobs[job.id] = job
        for dep in job.after:
            self._downstream.setdefault(dep.job, {})[job.id] = dep.when

    def _drop(self, job_id: int) -> None:
        old = self.jobs.pop(job_id, None)
        if old is not None:
            for dep in old.after:
                self._downstream.get(dep.job, {}).pop(job_id, None)

    def downstream_of(self, job_name: str) -> list[tuple[Job, str]]:
        """Jobs to start after `job_name` ends, each with its condition."""
        return [(self.jobs[i], when) for i, when in self._downstream.get(job_name, {}).items() if i in self.jobs]

    def _index_upstreams(self, job_id: int, upstreams: tuple[str, ...]) -> None:
        for name in self._upstreams.pop(job_id, ()):
            ids = self._dependents.get(name)
            if ids is not None:
                ids.discard(job_id)
                if not ids:
                    del self._dependents[name]
        if upstreams:
            self._upstreams[job_id] = upstreams
            for name in upstreams:
                self._dependents.setdefault(name, set()).add(job_id)

    def dependents_of(self, job_name: str) -> list[int]:
        """Ids of every stored job (enabled or not) whose `after` names `job_name`."""
        return sorted(self._dependents.get(job_name, ()))

    def forget(self, job_id: int) -> None:
        self._index_upstreams(job_id, ())
        self.invalid.pop(job_id, None)
        self._drop(job_id)
        if self._schedule.remove(job_id):
            log.info("job id %d deleted: no longer scheduled", job_id)
        self.on_unscheduled(job_id, f"job id {job_id} was deleted before this firing's scheduled time")

    async def load_all(self) -> None:
        self._announce = False  # one summary line for a full load, not one per job
        async with self._lock:
            # The revision first: a change made while we list is then seen again
            # by the next catch-up (applying twice is harmless), never skipped.
            revision = await self._store.revision()
            with _collector_paused():
                jobs = await self._store.list_jobs()
                present = {j.id for j in jobs}
                for job_id in self._schedule.job_ids() - present:
                    self.forget(job_id)
                for job_id in set(self._upstreams) - present:  # paused jobs deleted elsewhere
                    self._index_upstreams(job_id, ())
                # One reading of the clock: the load takes a few seconds at
                # 100,000 jobs, and firings due meanwhile are still caught (the
                # loop fires what is due since `now`, within its catch-up window).
                now = self._clock()
                self._bulk = True
                try:
                    for job in jobs:
                        self.apply(job, now)
                finally:
                    self._announce = True
                    self._bulk = False
                    self._on_change()  # for what was applied, even if the load stopped half-way
            self.revision = revision
            self._last_sync = time.monotonic()
        log.info("loaded %d jobs (%d scheduled) at revision %d", len(jobs), len(self._schedule), revision)

    async def catch_up(self, target_revision: int = 0) -> int:
        """Apply changes after our revision; returns the revision applied."""
        if target_revision and target_revision <= self.revision:
            return self.revision
        if time.monotonic() - self._last_sync > FULL_RELOAD_AFTER_SECONDS:
            await self.load_all()
            return self.revision
        async with self._lock:
            revision, ids = await self._store.changes_since(self.revision)
            if ids:
                found = await self._store.jobs_by_ids(ids)
                for job in found:
                    self.apply(job)
                for job_id in ids - {j.id for j in found}:
                    self.forget(job_id)
                log.info("applied changes to %d jobs (revision %d -> %d)", len(ids), self.revision, revision)
            self.revision = revision
            self._last_sync = time.monotonic()
        if ids:
            self._on_change()
        return self.revision

    async def fallback_loop(self, interval_seconds: float) -> None:
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.catch_up()
            except Exception as exc:  # noqa: BLE001 - the store may be briefly unreachable
                log.warning("periodic job sync failed (will retry): %s", exc)


def _fires_at(cron: CronSchedule, instant_ms: int) -> bool:
    return cron.next_after(instant_ms - 1) == instant_ms


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a full load builds its objects,
    which are then moved out of the collector's sight (gc.freeze).

    A load creates about ten long-lived objects per job. Collections during
    the load, the first one after it, and every full collection later would
    each walk all of them (0.2-0.3 s apiece at 100,000 jobs, stalling the
    event loop) to find no garbage: jobs hold no reference cycles. Frozen
    objects are still freed as usual when a job goes away (reference
    counting); a cycle among them would only be freed by gc.unfreeze().
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
