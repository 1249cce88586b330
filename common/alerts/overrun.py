"""A run past its timeout under timeout_action "alert": mark it once, alert once.

Two parties may notice: the dispatcher following the run (a timer from the
run's start, the usual path) and the monitor's periodic scan of running runs
(the run's dispatcher died, so nobody follows it; the executor neither kills
it nor knows it overran). Both call `report_overrun`; the store's
conditional update (`Store.mark_overrun`) lets exactly one of them win,
so the alert goes out once whatever fails over.
"""

from __future__ import annotations

import logging

from crontrio.common.alerts.message import overrun_alert
from crontrio.common.alerts.sender import AlertSender
from crontrio.common.clock import now_ms
from crontrio.common.model import NOTIFY_ALWAYS, NOTIFY_ON_FAILURE, Job
from crontrio.common.store.async_store import AsyncStore

log = logging.getLogger(__name__)
# Notify policies under which an overrun alerts: it is trouble (on_failure)
# and an event (always); "never" and "on_keyword" do not ask for it.
OVERRUN_NOTIFY_POLICIES = frozenset({NOTIFY_ON_FAILURE, NOTIFY_ALWAYS})


async def report_overrun(job: Job, run_id: str, store: AsyncStore, sender: AlertSender | None) -> bool:
    """Mark `run_id` as overrunning and send the job's alert; False when it
    was marked already (or has ended), so nothing is sent twice."""
    at_ms = now_ms()
    if not await store.mark_overrun(run_id, at_ms):
        return False
    log.warning(
        "job %s run %s overran its %gs timeout; timeout_action alert: left running, its end will be recorded",
        job.name,
        run_id,
        job.timeout_seconds,
    )
    if sender is None or job.notify_policy not in OVERRUN_NOTIFY_POLICIES:
        return True
    run = await store.get_run(run_id)
    if run is not None:
        sender.submit(
            overrun_alert(job, run),
            emails=list(job.notify_emails),
            phones=list(job.notify_phones),
            channels=list(job.notify_channels) or None,
        )
    return True
