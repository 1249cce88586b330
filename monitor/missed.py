"""Records firings nobody ran as `missed`, with the reason.

The monitor keeps its own heap of expected fire times (the same Schedule the
dispatchers use). A firing `missed_after` in the past with no run row at all
means no dispatcher claimed it: every dispatcher was down, stopped, or
starved. Recording it makes the gap visible in `cronctl run list` instead of
silent. The row goes in with the firing's unique key, so a dispatcher that
fires even later does not run it twice.
"""

from __future__ import annotations

import asyncio
import logging

from crontrio.common.alerts.message import run_alert, system_alert
from crontrio.common.alerts.sender import AlertSender
from crontrio.common.clock import now_ms
from crontrio.common.errors import ValidationError
from crontrio.common.jobs import schedule_of, validate_job
from crontrio.common.missed import missed_record
from crontrio.common.model import NOTIFY_ALWAYS, NOTIFY_ON_FAILURE, Job, RunRecord, iso_ms
from crontrio.common.schedule import Schedule
from crontrio.common.store.async_store import AsyncStore

log = logging.getLogger(__name__)
NEVER_DROP_MS = 10**15  # expected firings are checked however late, never skipped


class MissedDetector:
    def __init__(self, store: AsyncStore, missed_after_seconds: float) -> None:
        self._store = store
        self._missed_after_ms = int(missed_after_seconds * 1000)
        self._expected = Schedule()
        self._revision = 0
        self.recorded = 0
        self.alerts: AlertSender | None = None  # system + per-job alerts for missed firings, when set

    def _apply(self, job: Job, from_ms: int) -> None:
        if not job.enabled:
            self._expected.remove(job.id)
            return
        try:
            valid = validate_job(job)
            cron = schedule_of(valid)
            if cron is None:  # runs only after other jobs: no fire times to expect
                self._expected.remove(job.id)
                return
            # Nothing is expected of a job before it existed.
            self._expected.upsert(valid, cron, max(from_ms, job.created_ms))
        except Exception as exc:  # noqa: BLE001 - any bad job: skip it, keep checking the others
            self._expected.remove(job.id)  # the dispatchers do not schedule it either
            if not isinstance(exc, ValidationError):
                log.warning("job id %d cannot be checked for missed firings: %r", job.id, exc)

    async def load(self) -> None:
        self._revision = await self._store.revision()
        # Firings from before the monitor started are judged too, back to one
        # window: a restart of the monitor must not hide a gap.
        start = now_ms() - self._missed_after_ms
        for job in await self._store.list_jobs():
            self._apply(job, start)

    async def sync(self) -> None:
        revision, ids = await self._store.changes_since(self._revision)
        if ids:
            found = {j.id: j for j in await self._store.jobs_by_ids(ids)}
            for job_id in ids:
                if job_id in found:
                    self._apply(found[job_id], now_ms())
                else:
                    self._expected.remove(job_id)
        self._revision = revision

    async def pass_once(self) -> int:
        await self.sync()
        horizon = now_ms() - self._missed_after_ms
        due, _ = self._expected.pop_due(horizon, NEVER_DROP_MS)
        if not due:
            return 0
        low = min(ms for _, ms in due)
        high = max(ms for _, ms in due) + 1
        ran = await self._store.firings_between(low, high)
        missing = [(job, ms) for job, ms in due if (job.id, ms) not in ran]
        if not missing:
            return 0
        reason = (
            f"missed: no dispatcher fired it within {self._missed_after_ms / 1000:g}s of its time (were all dispatchers down?)"
        )
        at = now_ms()
        records = [missed_record(job, ms, reason, at_ms=at) for job, ms in missing]
        created = await self._store.write_runs(records, [])
        count = sum(created)
        if self.alerts is not None:
            self._alert(missing, records, created)
        for (job, ms), was_created in list(zip(missing, created, strict=True))[:20]:
            if was_created:
                log.warning("job %s: firing at %s was missed: nobody ran it", job.name, iso_ms(ms))
        if count > 20:
            log.warning("... and %d more missed firings", count - 20)
        self.recorded += count
        return count

    def _alert(self, missing: list[tuple[Job, int]], records: list[RunRecord], created: list[bool]) -> None:
        assert self.alerts is not None
        for (job, ms), record, was_created in zip(missing, records, created, strict=True):
            if not was_created:
                continue
            # One system alert per job (throttled by key), and the job's own
            # alert when its policy covers missed firings.
            self.alerts.submit_system(
                system_alert(
                    f"missed:{job.name}",
                    f"job {job.name} missed a firing",
                    f"Firing {iso_ms(ms)} of job {job.name} was not run by any dispatcher.",
                    "error",
                )
            )
            if job.notify_policy in (NOTIFY_ON_FAILURE, NOTIFY_ALWAYS):
                self.alerts.submit(
                    run_alert(job, record, retries_used=0),
                    emails=list(job.notify_emails),
                    phones=list(job.notify_phones),
                    channels=list(job.notify_channels) or None,
                )

    async def run(self, interval_seconds: float) -> None:
        loaded = False
        while True:
            try:
                if not loaded:  # a failed first load is retried, not the end of the check
                    await self.load()
                    loaded = True
                await self.pass_once()
            except Exception as exc:  # noqa: BLE001 - keep watching after a DB hiccup
                log.warning("missed-firing check failed (will retry): %s", exc)
            await asyncio.sleep(interval_seconds)
