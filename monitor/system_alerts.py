"""System alerts the monitor raises: dispatchers gone, runs stuck past their timeout.
Also the backstop for overrunning runs (timeout_action alert) nobody follows.

(Executor down/up and missed firings are raised where they are detected:
health_watch.py and missed.py.)
"""

from __future__ import annotations

import asyncio
import logging

from crontrio.common.alerts.message import system_alert
from crontrio.common.alerts.overrun import report_overrun
from crontrio.common.alerts.sender import AlertSender
from crontrio.common.clock import now_ms
from crontrio.common.model import TIMEOUT_ALERT, iso_ms
from crontrio.common.store.async_store import AsyncStore
from crontrio.monitor.dispatcher_links import DispatcherLinks

log = logging.getLogger(__name__)
# A run this long past its job's timeout was not killed: the executor or its
# connection is wedged, and someone should look.
STUCK_GRACE_MS = 60_000
# A run of a timeout_action "alert" job this long past its timeout and not yet
# reported as overrunning: its dispatcher (whose timer reports it) is gone, so
# the monitor reports it. The store's conditional update keeps it to one alert.
OVERRUN_BACKSTOP_GRACE_MS = 5_000


class SystemAlerts:
    def __init__(self, sender: AlertSender, store: AsyncStore, links: DispatcherLinks) -> None:
        self._sender = sender
        self._store = store
        self._links = links
        self._dispatchers: set[str] | None = None
        self._stuck_reported: set[str] = set()

    def check_dispatchers(self) -> None:
        live = self._links.live_ids()
        if live is None:
            return
        if self._dispatchers is not None:
            for gone in sorted(self._dispatchers - live):
                log.warning("dispatcher %s is gone", gone)
                self._sender.submit_system(
                    system_alert(
                        f"dispatcher-down:{gone}",
                        f"dispatcher {gone} is down",
                        f"Dispatcher {gone} stopped answering or left the registry. The other dispatchers keep "
                        "firing; the monitor collects the results of its runs.",
                        "error",
                    )
                )
        self._dispatchers = live

    async def check_stuck_runs(self) -> None:
        now = now_ms()
        # Only a run that started over a grace ago can be past its timeout by
        # that grace: the runs of a burst that just started are not read.
        running = await self._store.running_started_before(now - min(STUCK_GRACE_MS, OVERRUN_BACKSTOP_GRACE_MS), 5000)
        long_ones = [r for r in running if r.started_ms and r.run_id not in self._stuck_reported]
        if not long_ones:
            return
        jobs = {j.id: j for j in await self._store.jobs_by_ids({r.job_id for r in long_ones})}
        for run in long_ones:
            job = jobs.get(run.job_id)
            if job is None or job.timeout_seconds <= 0:
                continue
            overdue = now - run.started_ms - int(job.timeout_seconds * 1000)
            if job.timeout_action == TIMEOUT_ALERT:
                # Not stuck: left running on purpose. Report the overrun if its
                # dispatcher did not (it died), then leave the run alone.
                if overdue > OVERRUN_BACKSTOP_GRACE_MS and not run.overrun_ms:
                    await report_overrun(job, run.run_id, self._store, self._sender)
                continue
            if overdue > STUCK_GRACE_MS:
                self._stuck_reported.add(run.run_id)
                log.warning(
                    "run %s of job %s is stuck: %ds past its %gs timeout",
                    run.run_id,
                    job.name,
                    overdue // 1000,
                    job.timeout_seconds,
                )
                self._sender.submit_system(
                    system_alert(
                        f"run-stuck:{run.run_id}",
                        f"run {run.run_id} of job {job.name} is stuck",
                        f"Started {iso_ms(run.started_ms)} on {run.executor}; its timeout is {job.timeout_seconds:g}s "
                        f"and it is still running {overdue // 1000}s past it.",
                        "error",
                    )
                )

    async def run(self, interval_seconds: float) -> None:
        while True:
            try:
                self.check_dispatchers()
                await self.check_stuck_runs()
            except Exception as exc:  # noqa: BLE001 - alerting must not stop on a DB hiccup
                log.warning("system alert checks failed (will retry): %s", exc)
            await asyncio.sleep(interval_seconds)
