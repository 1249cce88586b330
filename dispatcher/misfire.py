"""Firings that could not be recorded in time: they never start late.

A scheduled firing is recorded before it runs. When the database is locked,
down or too slow, its insert waits in the recorder's bounded backlog; if it
is not written within `[dispatcher] misfire_grace_seconds` of the firing's
time (still waiting for room in the backlog at that deadline, dropped
from it then, or written later than that), the firing is a misfire: it is not run then, and
once run-history writes are back within the grace its job's misfire policy
applies, as after a dispatcher outage (catch_up.py): `skip` records each
misfired firing `missed`, `run_once` runs the latest of them once (the
others `missed`), `run_all` runs each, within the job's catch-up window.

Memory stays bounded however long the database is away: per job only the
first and the last misfired instant are kept; the firings between them are
found again from the job's schedule when the database answers (at most the
latest MAX_CATCH_UP_FIRINGS; older ones are left to the monitor's
missed-firing check).

A burst that overruns the grace can misfire thousands of jobs at once: their
missed records are written in one store call per pass, and the log names
the first LOGGED_JOBS jobs of a pass, then sums up the rest, rather than
writing a line (and a transaction) per job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.common.jobs import schedule_of
from crontrio.common.missed import missed_record
from crontrio.common.model import (
    MISFIRE_RUN_ALL,
    MISFIRE_RUN_ONCE,
    TRIGGER_CATCH_UP,
    Job,
    RunRecord,
    iso_ms,
    make_run_id,
)
from crontrio.common.store.async_store import AsyncStore
from crontrio.dispatcher.catch_up import latest_firings
from crontrio.dispatcher.recorder import RunRecorder

log = logging.getLogger(__name__)

# The error of a run recorded after its grace: how a later pass knows it is
# one it may still run (run_once/run_all), not a firing missed otherwise.
LATE_PREFIX = "misfired: recorded"
# How often to look whether the database keeps up again.
CHECK_SECONDS = 0.5
# Jobs named one by one in the log, per pass (first misfire, then settling).
LOGGED_JOBS = 20

RunFiringFn = Callable[..., Coroutine[Any, Any, None]]
SpawnFn = Callable[[Coroutine[Any, Any, None], str], None]


@dataclass
class _Span:
    job: Job
    first_ms: int
    last_ms: int
    reason: str


@dataclass
class _Settlement:
    """What a pass does with one span: its missed records, the firings to run."""

    span: _Span
    job: Job | None
    fired: list[int]
    to_run: list[int]
    records: list[RunRecord]


class MisfireTracker:
    def __init__(
        self,
        store: AsyncStore,
        recorder: RunRecorder,
        dispatcher_id: str,
        grace_seconds: float,
        *,
        run_firing: RunFiringFn | None = None,
        spawn: SpawnFn | None = None,
        current_job: Callable[[int], Job | None] = lambda _job_id: None,
    ) -> None:
        self._store = store
        self._recorder = recorder
        self._dispatcher_id = dispatcher_id
        self.grace_ms = int(grace_seconds * 1000)
        self._spans: dict[int, _Span] = {}
        self._wake = asyncio.Event()
        # Given by the app: run a firing (FiringRunner.run_firing), spawn a
        # task, and the job as it is now (None once paused, deleted or invalid).
        self.run_firing = run_firing
        self.spawn = spawn
        self.current_job = current_job

    def deadline_ms(self, scheduled_ms: int) -> int:
        """When a firing's record is too late for it to run."""
        return scheduled_ms + self.grace_ms

    def is_late(self, scheduled_ms: int) -> bool:
        return now_ms() > self.deadline_ms(scheduled_ms)

    def note(self, job: Job, scheduled_ms: int, reason: str) -> None:
        """A firing of `job` was not run because it could not be recorded in time."""
        span = self._spans.get(job.id)
        if span is None:
            if len(self._spans) < LOGGED_JOBS:
                log.warning(
                    "job %s firing %s misfired (%s); more may follow while the database lags: "
                    "misfire policy %s applies once it keeps up",
                    job.name,
                    iso_ms(scheduled_ms),
                    reason,
                    job.misfire_policy,
                )
            elif len(self._spans) == LOGGED_JOBS:
                log.warning("more jobs misfire (%s): each job's misfire policy applies once the database keeps up", reason)
            self._spans[job.id] = _Span(job, scheduled_ms, scheduled_ms, reason)
        else:
            span.job = job
            span.first_ms = min(span.first_ms, scheduled_ms)
            span.last_ms = max(span.last_ms, scheduled_ms)
        self._wake.set()

    async def recorded_late(self, job: Job, record: RunRecord) -> None:
        """Its record was written, but after the grace: mark it so, do not run it now."""
        late_s = (now_ms() - record.scheduled_ms) / 1000
        error = f"{LATE_PREFIX} {late_s:.1f}s after its time (run history writes lagged; grace {self.grace_ms / 1000:g}s)"
        await self._recorder.update(record.run_id, status=status.MISSED, error=error, finished_ms=now_ms())
        self.note(job, record.scheduled_ms, error)

    def _keeping_up(self) -> bool:
        rec = self._recorder
        return rec.writing_seconds() * 1000 < self.grace_ms and rec.backlog < rec.max_backlog // 2

    async def run(self) -> None:
        """Apply the misfire policies once run-history writes keep up again."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(CHECK_SECONDS)
            if not self._spans or not self._keeping_up():
                continue
            # Only once the last misfired firing's deadline has passed: until
            # then a firing in its span may still be recorded (and run) in time
            # by another dispatcher, and must not be taken for missed.
            now = now_ms()
            ready = [job_id for job_id, span in self._spans.items() if self.deadline_ms(span.last_ms) < now]
            spans = [self._spans.pop(job_id) for job_id in ready]
            if not self._spans:
                self._wake.clear()
            try:
                await self._settle(spans)
            except Exception as exc:  # noqa: BLE001 - nothing was started yet: tried again on the next pass
                log.warning("recording the misfired firings of %d job(s) failed (will retry): %s", len(spans), exc)
                for span in spans:
                    self.note(span.job, span.first_ms, span.reason)
                    self.note(span.job, span.last_ms, span.reason)

    def _plan(self, span: _Span, now: int) -> _Settlement | None:
        """What to record missed and what to run of one job's misfired span."""
        job = self.current_job(span.job.id)
        cron = schedule_of(span.job)
        if cron is None:
            return None
        fired = latest_firings(cron, span.first_ms - 1, span.last_ms + 1)
        policy = job.misfire_policy if job is not None else ""
        window_start = now - int((job.catch_up_window_seconds if job is not None else 0) * 1000)
        in_window = [ms for ms in fired if ms >= window_start]
        to_run = in_window[-1:] if policy == MISFIRE_RUN_ONCE else in_window if policy == MISFIRE_RUN_ALL else []
        running = set(to_run)
        why = "paused or deleted since" if job is None else f"misfire policy {job.misfire_policy}"
        reason = f"missed: not recorded within {self.grace_ms / 1000:g}s of its time (run history writes lagged); {why}"
        records = [
            missed_record(span.job, ms, reason, at_ms=now, dispatcher=self._dispatcher_id) for ms in fired if ms not in running
        ]
        return _Settlement(span, job, fired, to_run, records)

    async def _settle(self, spans: list[_Span]) -> None:
        """Apply each span's misfire policy: one write for every missed
        record of the pass, then the firings the policies run."""
        now = now_ms()
        plans = [plan for span in spans if (plan := self._plan(span, now)) is not None]
        records = [record for plan in plans for record in plan.records]
        # Existing rows (run, or recorded late and marked) stay as they are.
        created = await self._store.write_runs(records, []) if records else []
        # Past this point nothing is retried: a firing started twice would run twice.
        at = 0
        totals = [0, 0, 0]  # firings, recorded missed, run now (of the jobs not named)
        for i, plan in enumerate(plans):
            recorded = sum(created[at : at + len(plan.records)])
            at += len(plan.records)
            job = plan.span.job if plan.job is None else plan.job
            started = 0
            for ms in plan.to_run:
                try:
                    started += await self._start(job, ms)
                except Exception as exc:  # noqa: BLE001 - the others still run; the monitor records this one missed
                    log.warning("job %s firing %s: could not run it per its misfire policy: %s", job.name, iso_ms(ms), exc)
            if i >= LOGGED_JOBS:
                totals = [totals[0] + len(plan.fired), totals[1] + recorded, totals[2] + started]
                continue
            log.warning(
                "job %s: %d firings from %s to %s misfired while run history writes lagged; "
                "misfire policy %s: %d recorded missed, %d run now",
                plan.span.job.name,
                len(plan.fired),
                iso_ms(plan.span.first_ms),
                iso_ms(plan.span.last_ms),
                plan.job.misfire_policy if plan.job is not None else "(job paused or deleted)",
                recorded,
                started,
            )
        if len(plans) > LOGGED_JOBS:
            log.warning(
                "and %d more jobs: %d firings misfired while run history writes lagged; %d recorded missed, %d run now",
                len(plans) - LOGGED_JOBS,
                *totals,
            )

    async def _start(self, job: Job, ms: int) -> bool:
        """Run the misfired firing `ms` once now, unless something else has it."""
        assert self.run_firing is not None and self.spawn is not None
        run_id = make_run_id(job.id, ms, 1)
        existing = await self._store.get_run(run_id)
        if existing is None:
            self.spawn(self.run_firing(job, ms, TRIGGER_CATCH_UP), f"misfire-{run_id}")
            return True
        mine = existing.dispatcher == self._dispatcher_id and existing.error.startswith(LATE_PREFIX)
        if existing.status == status.MISSED and mine:
            # Recorded late by us and marked: this very row runs now. Pending
            # again (durably) first, so that a later pass never starts it twice.
            await self._recorder.update(run_id, status=status.PENDING, trigger=TRIGGER_CATCH_UP)
            self.spawn(self.run_firing(job, ms, TRIGGER_CATCH_UP, 1, recorded=True), f"misfire-{run_id}")
            return True
        return False
