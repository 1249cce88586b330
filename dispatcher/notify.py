"""Per-job alerts: after a firing's last attempt, the job's notify policy decides.

Sending is the AlertSender's job (common/alerts): submit() only queues, so a
slow mail server never delays firing.
"""

from __future__ import annotations

import logging

from crontrio.common import status
from crontrio.common.alerts.message import run_alert
from crontrio.common.alerts.overrun import report_overrun
from crontrio.common.alerts.sender import AlertSender
from crontrio.common.model import NOTIFY_ALWAYS, NOTIFY_ON_FAILURE, NOTIFY_ON_KEYWORD, Job, RunRecord
from crontrio.common.store.async_store import AsyncStore

log = logging.getLogger(__name__)
# What on_failure means (DESIGN.md / issue: failed, timeout, killed, lost, missed).
FAILURE_STATUSES = frozenset({status.FAILED, status.TIMEOUT, status.KILLED, status.LOST, status.MISSED})
KEYWORD_MARK = "output contains keyword"


def should_notify(job: Job, run: RunRecord) -> bool:
    if job.notify_policy == NOTIFY_ALWAYS:
        return run.status not in (status.SKIPPED, status.QUEUED)
    if job.notify_policy == NOTIFY_ON_FAILURE:
        return run.status in FAILURE_STATUSES
    if job.notify_policy == NOTIFY_ON_KEYWORD:
        return KEYWORD_MARK in run.error
    return False


class RunNotifier:
    def __init__(self, sender: AlertSender, store: AsyncStore) -> None:
        self._sender = sender
        self._store = store

    async def after_firing(self, job: Job, run_id: str) -> None:
        """The firing ended with run `run_id` (its last attempt): alert if the policy says so."""
        if job.notify_policy not in (NOTIFY_ALWAYS, NOTIFY_ON_FAILURE, NOTIFY_ON_KEYWORD):
            return
        run = await self._store.get_run(run_id)
        if run is None or not should_notify(job, run):
            return
        self._sender.submit(
            run_alert(job, run, retries_used=run.attempt - 1),
            emails=list(job.notify_emails),
            phones=list(job.notify_phones),
            channels=list(job.notify_channels) or None,
        )

    async def overran(self, job: Job, run_id: str) -> bool:
        """Run `run_id` passed its timeout under timeout_action alert: mark it
        and send the job's alert, once (common/alerts/overrun.py)."""
        return await report_overrun(job, run_id, self._store, self._sender)
