"""Building the record of one run of a firing: the one place that says what a
new run row holds (its id from job, time, attempt and shard; the dispatcher
that wrote it; when). The firing runner and the overlap gate both build
theirs here (docs/ARCHITECTURE.md, "The life of a firing", steps 4-5).
"""

from __future__ import annotations

from dataclasses import dataclass

from crontrio.common import status
from crontrio.common.clock import SYSTEM_CLOCK, Clock
from crontrio.common.model import Job, RunRecord, make_run_id


@dataclass(frozen=True)
class RunRecords:
    """Makes the run records of one dispatcher."""

    dispatcher_id: str
    clock: Clock = SYSTEM_CLOCK

    def new(
        self,
        job: Job,
        scheduled_ms: int,
        attempt: int,
        trigger: str,
        *,
        run_status: str = status.PENDING,
        shard: int = 0,
        shard_total: int = 0,
        error: str = "",
        finished_ms: int = 0,
    ) -> RunRecord:
        """A new (not yet stored) record of attempt `attempt` of the firing
        of `job` at `scheduled_ms`; pending unless `run_status` says otherwise."""
        return RunRecord(
            run_id=make_run_id(job.id, scheduled_ms, attempt, shard),
            job_id=job.id,
            job_name=job.name,
            scheduled_ms=scheduled_ms,
            attempt=attempt,
            status=run_status,
            dispatcher=self.dispatcher_id,
            created_ms=self.clock.now_ms(),
            trigger=trigger,
            shard=shard,
            shard_total=shard_total,
            error=error,
            finished_ms=finished_ms,
        )
