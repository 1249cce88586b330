"""A job's overlap policy: what a firing does while the previous run still goes.

Decided from the run table, not from one process's memory, so the policy
holds whichever dispatcher ran the previous firing: `allow` runs anyway,
`skip` records a skipped run with the reason, `queue` keeps at most one
waiting firing (started when the running one ends), `replace` kills the
running one, then starts.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.common.model import OVERLAP_ALLOW, OVERLAP_QUEUE, OVERLAP_REPLACE, OVERLAP_SKIP, Job, RunRecord, iso_ms
from crontrio.common.store.async_store import AsyncStore
from crontrio.dispatcher.executor_client import ExecutorClients
from crontrio.dispatcher.recorder import RunRecorder
from crontrio.dispatcher.run_records import RunRecords
from crontrio.protos import crontrio_pb2 as pb

log = logging.getLogger(__name__)
# How long `replace` waits for the killed run to be recorded as ended.
REPLACE_WAIT_SECONDS = 30.0


class OverlapGate:
    def __init__(self, store: AsyncStore, recorder: RunRecorder, clients: ExecutorClients, records: RunRecords) -> None:
        self._records = records
        self._store = store
        self._recorder = recorder
        self._clients = clients

    async def admit(self, job: Job, scheduled_ms: int, trigger: str, deadline_ms: int = 0) -> bool:
        """True when this firing may run now. A skipped or queued record is
        written with `deadline_ms` (RunRecorder.insert: RecordDroppedError)."""
        if job.overlap_policy == OVERLAP_ALLOW:
            return True
        active = await self._store.active_runs_of(job.id)
        if not active:
            return True
        previous = active[0]
        if job.overlap_policy == OVERLAP_SKIP:
            await self._record(
                job,
                scheduled_ms,
                trigger,
                status.SKIPPED,
                f"skipped: previous run {previous.run_id} is still {previous.status}",
                deadline_ms=deadline_ms,
            )
            return False
        if job.overlap_policy == OVERLAP_QUEUE:
            waiting = await self._store.queued_runs_of(job.id)
            if waiting:
                await self._record(
                    job,
                    scheduled_ms,
                    trigger,
                    status.SKIPPED,
                    f"skipped: queue full, firing {iso_ms(waiting[0].scheduled_ms)} is already waiting",
                    deadline_ms=deadline_ms,
                )
            else:
                await self._record(
                    job,
                    scheduled_ms,
                    trigger,
                    status.QUEUED,
                    f"queued behind run {previous.run_id}",
                    finished=False,
                    deadline_ms=deadline_ms,
                )
            return False
        if job.overlap_policy == OVERLAP_REPLACE:
            await self._replace(job, active)
        return True

    async def _record(
        self,
        job: Job,
        scheduled_ms: int,
        trigger: str,
        run_status: str,
        reason: str,
        finished: bool = True,
        deadline_ms: int = 0,
    ) -> None:
        finished_ms = now_ms() if finished else 0
        record = self._records.new(job, scheduled_ms, 1, trigger, run_status=run_status, error=reason, finished_ms=finished_ms)
        if await self._recorder.insert(record, deadline_ms=deadline_ms):
            log.info("job %s firing %s %s: %s", job.name, iso_ms(scheduled_ms), run_status, reason)

    async def _replace(self, job: Job, active: list[RunRecord]) -> None:
        for run in active:
            log.info("job %s: replacing run %s (overlap policy replace): killing it", job.name, run.run_id)
            if run.executor:
                try:
                    await self._clients.stub(run.executor).Kill(pb.KillRequest(run_id=run.run_id), timeout=5)
                except grpc.aio.AioRpcError as exc:
                    log.warning("kill of run %s on %s failed: %s", run.run_id, run.executor, exc.details())
        deadline = time.monotonic() + REPLACE_WAIT_SECONDS
        ids = {r.run_id for r in active}
        while time.monotonic() < deadline:
            still = [r for r in await self._store.active_runs_of(job.id) if r.run_id in ids]
            if not still:
                return
            await asyncio.sleep(0.1)
        log.warning("job %s: replaced runs did not end within %.0fs; starting anyway", job.name, REPLACE_WAIT_SECONDS)

    async def next_queued(self, job: Job) -> RunRecord | None:
        """The waiting firing of a `queue` job, now ours to start (None if none).

        A firing queued before its job was paused or deleted is not started:
        it is recorded skipped with the reason. The store is asked, not this
        dispatcher's copy of the job, which another dispatcher's pause may not
        have reached yet."""
        if job.overlap_policy != OVERLAP_QUEUE:
            return None
        for queued in await self._store.queued_runs_of(job.id):
            if await self._store.promote_queued(queued.run_id):
                current = await self._store.get_job(job_id=job.id)
                if current is None or not current.enabled:
                    why = "deleted" if current is None else "paused"
                    reason = f"skipped: job {job.name} was {why} while this firing was queued"
                    log.info("job %s firing %s %s", job.name, iso_ms(queued.scheduled_ms), reason)
                    await self._recorder.update(queued.run_id, status=status.SKIPPED, error=reason, finished_ms=now_ms())
                    return None
                return queued
        return None
