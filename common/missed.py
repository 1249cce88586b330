"""The one shape of a MISSED run record: a firing that will never run.

Three places decide that a firing is missed (see docs/ARCHITECTURE.md,
failure cases): the dispatcher catching up after every dispatcher was down
(`dispatcher/catch_up.py`), the dispatcher whose run history writes lagged
past the misfire grace (`dispatcher/misfire.py`), and the monitor finding a
firing nobody ran (`monitor/missed.py`). They differ only in who records it,
why and under which trigger; the record is built here so they cannot drift.
"""

from __future__ import annotations

from crontrio.common import status
from crontrio.common.model import TRIGGER_SCHEDULE, Job, RunRecord, make_run_id


def missed_record(
    job: Job, scheduled_ms: int, error: str, *, at_ms: int, dispatcher: str = "", trigger: str = TRIGGER_SCHEDULE
) -> RunRecord:
    """The first attempt of `job`'s firing at `scheduled_ms`, finished as missed at `at_ms`."""
    return RunRecord(
        run_id=make_run_id(job.id, scheduled_ms, 1),
        job_id=job.id,
        job_name=job.name,
        scheduled_ms=scheduled_ms,
        attempt=1,
        status=status.MISSED,
        dispatcher=dispatcher,
        created_ms=at_ms,
        finished_ms=at_ms,
        error=error,
        trigger=trigger,
    )


__all__ = ["missed_record"]
