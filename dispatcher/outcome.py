"""What became of a run, recorded: started, finished, given up, or ended
without running (skipped, no executor). Also the overrun timer of a
`timeout_action alert` run, which lives exactly as long as the run is
followed. The life of a firing (dispatcher/firing.py) decides; this module
writes the record and says the `Outcome` (docs/ARCHITECTURE.md, "The life of
a firing", step 9).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.common.model import KEYWORD_FAIL, TIMEOUT_ALERT, Job, RunRecord
from crontrio.common.registry.base import ExecutorRef
from crontrio.dispatcher.executor_link import ExecutorLink
from crontrio.dispatcher.metrics import DispatcherMetrics
from crontrio.dispatcher.recorder import RunRecorder
from crontrio.protos import crontrio_pb2 as pb

log = logging.getLogger(__name__)

OverrunFn = Callable[[Job, str], Coroutine[Any, Any, Any]]


@dataclass(frozen=True)
class Outcome:
    """How one attempt (or one run of it) ended, as the life of a firing sees it."""

    status: str
    run_id: str
    executor: str = ""
    unreachable: bool = False
    # Provably never started on `executor` (refused or handed back unstarted,
    # never delivered, or its executor died before the run's time): safe to
    # send elsewhere. Such an outcome is not recorded; `error` says why.
    not_started: bool = False
    error: str = ""


def not_started(record: RunRecord, executor: ExecutorRef, error: str) -> Outcome:
    """A run that provably never started on `executor` (nothing recorded)."""
    return Outcome(status.FAILED, record.run_id, executor.address, unreachable=True, not_started=True, error=error)


class RunOutcomes:
    """Records the course and the end of the runs one dispatcher follows."""

    def __init__(
        self,
        recorder: RunRecorder,
        link: ExecutorLink,
        metrics: DispatcherMetrics,
        on_overrun: OverrunFn | None = None,
    ) -> None:
        self._recorder = recorder
        self._link = link
        self._metrics = metrics
        self._on_overrun = on_overrun
        # Overrun timers of the runs this dispatcher follows: run id -> timer.
        self._overrun_timers: dict[str, asyncio.Task[None]] = {}

    def ended_unrun(
        self, job: Job, record: RunRecord, run_status: str, reason: str, level: int = logging.WARNING, executor: str = ""
    ) -> Outcome:
        """Record a run that ends without running anywhere (skipped, or failed
        for want of an executor), with the reason, logged at `level`."""
        log.log(level, "job %s run %s %s: %s", job.name, record.run_id, run_status, reason)
        self._recorder.update(record.run_id, status=run_status, error=reason, finished_ms=now_ms())
        return Outcome(run_status, record.run_id, executor)

    def started(self, job: Job, record: RunRecord, executor: ExecutorRef, ev: pb.RunStarted) -> None:
        """The executor started the run: record it, and time its overrun."""
        self._watch_overrun(job, record.run_id, ev.started_ms)
        self._metrics.started(record, ev.started_ms)
        # Soon, not now: usually the run's end follows and takes it along.
        self._recorder.update_soon(
            record.run_id,
            status=status.RUNNING,
            executor=ev.executor or executor.address,
            host=ev.host,
            pid=ev.pid,
            started_ms=ev.started_ms,
        )

    def unfollowed(self, run_id: str) -> None:
        """The run is no longer followed here (it ended, or we gave up on it)."""
        timer = self._overrun_timers.pop(run_id, None)
        if timer is not None:
            timer.cancel()

    def give_up(
        self,
        job: Job,
        record: RunRecord,
        executor: ExecutorRef,
        started: bool,
        reason: str,
        invalid: bool = False,
        refused: bool = False,
    ) -> Outcome:
        """Record the run as failed or lost; `refused`: the executor would not
        start it (not for the request's sake: another executor may take it)."""
        if invalid:
            run_status, error = status.FAILED, f"executor {executor.address} refused the run: {reason}"
        elif refused:
            run_status, error = status.FAILED, f"executor {executor.address} refused the run, which did not start there: {reason}"
        elif started:
            run_status, error = status.LOST, f"executor lost: no contact with {executor.address}: {reason}"
        else:
            run_status, error = status.FAILED, f"executor {executor.address} unreachable: {reason}"
        log.warning("job %s run %s %s: %s", job.name, record.run_id, run_status, error)
        self._recorder.update(record.run_id, status=run_status, error=error, finished_ms=now_ms(), executor=executor.address)
        return Outcome(run_status, record.run_id, executor.address, unreachable=not started and not invalid)

    async def finish(self, job: Job, record: RunRecord, executor: ExecutorRef, fin: pb.RunFinished) -> Outcome:
        """The executor's result: recorded durably, then acknowledged to it."""
        run_status, error = fin.status, fin.error
        if fin.matched_keyword:
            if job.keyword_action == KEYWORD_FAIL and run_status == status.SUCCEEDED:
                run_status = status.FAILED
                error = f"output contains keyword {fin.matched_keyword!r}"
            else:
                error = (error + "; " if error else "") + f"output contains keyword {fin.matched_keyword!r} (notify only)"
        ran_ms = fin.finished_ms - fin.started_ms
        if job.timeout_action == TIMEOUT_ALERT and 0 < job.timeout_seconds * 1000 < ran_ms and fin.started_ms:
            # The overrun noted in the final record (overrun_ms says when it was reported).
            note = f"overran its {job.timeout_seconds:g}s timeout: ran {ran_ms / 1000:.3f}s (timeout_action alert, not killed)"
            error = (error + "; " if error else "") + note
        # Durable before the ack: once acknowledged, the executor forgets it.
        await self._recorder.update(
            record.run_id,
            status=run_status,
            exit_code=fin.exit_code,
            started_ms=fin.started_ms,
            finished_ms=fin.finished_ms,
            output=fin.output_tail,
            output_truncated=fin.output_truncated,
            error=error,
            pid=fin.pid,
            host=fin.host,
            executor=fin.executor or executor.address,
        )
        duration = max(0, fin.finished_ms - fin.started_ms) / 1000
        log.info(
            "job %s run %s %s (exit %d) in %.2fs on %s%s",
            job.name,
            record.run_id,
            run_status,
            fin.exit_code,
            duration,
            fin.executor or executor.address,
            f": {error}" if error else "",
        )
        await self._link.ack(executor.address, record.run_id)
        return Outcome(run_status, record.run_id, executor.address)

    def _watch_overrun(self, job: Job, run_id: str, started_ms: int) -> None:
        """timeout_action alert: report the run as overrunning once its
        timeout has passed since it started (the timer dies with the run).

        Why a dispatcher timer and not the executor: the run is followed here
        anyway, and the report (a conditional update, then the alert) needs
        the store. If this dispatcher dies, nobody follows the run; the
        monitor's scan of running runs past their timeout then reports it
        (monitor/system_alerts.py), and the store's conditional update keeps
        the alert to one whoever gets there first."""
        if job.timeout_action != TIMEOUT_ALERT or job.timeout_seconds <= 0 or self._on_overrun is None:
            return
        if run_id in self._overrun_timers:
            return
        on_overrun = self._on_overrun
        delay = max(0.0, (started_ms + job.timeout_seconds * 1000 - now_ms()) / 1000)

        async def report() -> None:
            try:
                await on_overrun(job, run_id)
            except Exception as exc:  # noqa: BLE001 - an alerting problem must never break the run
                log.error("job %s run %s: overrun report failed: %s", job.name, run_id, exc)

        async def timer() -> None:
            await asyncio.sleep(delay)
            # Shielded: the run ending now cancels the timer, but a report
            # under way (the run already marked) must still send its alert.
            await asyncio.shield(report())

        self._overrun_timers[run_id] = asyncio.create_task(timer(), name=f"overrun-{run_id}")
