"""broadcast and sharded jobs: one firing, one run per executor of the plan
(shard i of n on the i-th), recorded together; the attempt succeeds only if
every run does (docs/ARCHITECTURE.md, "The life of a firing", steps 5-7).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from crontrio.common import status
from crontrio.common.model import Job, RunRecord, firing_id, iso_ms
from crontrio.common.registry.base import ExecutorRef
from crontrio.dispatcher.misfire import MisfireTracker
from crontrio.dispatcher.outcome import Outcome
from crontrio.dispatcher.recorder import RunRecorder
from crontrio.dispatcher.run_records import RunRecords

log = logging.getLogger(__name__)

# Runs one record on the first executor of a plan (FiringRunner._run_on).
RunOnFn = Callable[[Job, RunRecord, list[ExecutorRef]], Awaitable[Outcome]]


class FanOut:
    def __init__(self, records: RunRecords, recorder: RunRecorder, run_on: RunOnFn) -> None:
        self._records = records
        self._recorder = recorder
        self._run_on = run_on

    async def attempt(
        self,
        job: Job,
        scheduled_ms: int,
        attempt: int,
        trigger: str,
        plan: list[ExecutorRef],
        recorded: bool = False,
        misfires: MisfireTracker | None = None,
    ) -> Outcome | None:
        """One attempt: one run per executor of `plan`. None when nothing of it
        runs now (recorded elsewhere already, or not recorded in time)."""
        total = len(plan)
        records = [self._records.new(job, scheduled_ms, attempt, trigger, shard=i, shard_total=total) for i in range(total)]
        deadline = misfires.deadline_ms(scheduled_ms) if misfires is not None else 0
        answers = await asyncio.gather(*(self._recorder.insert(r, deadline_ms=deadline) for r in records), return_exceptions=True)
        if misfires is not None and (misfires.is_late(scheduled_ms) or any(isinstance(a, BaseException) for a in answers)):
            # Not all of it recorded in time: none of it runs now.
            for r, answer in zip(records, answers, strict=True):
                if answer is True:
                    await misfires.recorded_late(job, r)
            misfires.note(job, scheduled_ms, "not every shard was recorded in time")
            return None
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        created = [bool(a) for a in answers]
        if recorded:  # shard 0 is the queued row this dispatcher just promoted
            created[0] = True
            self._recorder.update(records[0].run_id, shard_total=total, dispatcher=self._records.dispatcher_id)
        if not created[0]:
            log.info("firing %s attempt %d already recorded by another dispatcher", firing_id(job.id, scheduled_ms), attempt)
            return None
        log.info(
            "job %s fired for %s: %s to %d executors (attempt %d)",
            job.name,
            iso_ms(scheduled_ms),
            job.route_strategy,
            total,
            attempt,
        )
        # A shard that never started on its executor: sharded moves it to
        # another (each shard must run once somewhere), broadcast skips it.
        outcomes = await asyncio.gather(
            *(self._run_on(job, r, [e]) for r, e in zip(records, plan, strict=True) if created[r.shard])
        )
        failed = [o for o in outcomes if o.status not in (status.SUCCEEDED, status.SKIPPED)]
        if failed:
            return Outcome(failed[0].status, records[0].run_id, failed[0].executor, failed[0].unreachable)
        return Outcome(status.SUCCEEDED, records[0].run_id)
