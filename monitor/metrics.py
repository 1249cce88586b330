"""The monitor's Prometheus metrics (README "Metrics"), served on its
http_listen at /metrics.

Cluster-wide values come from what the monitor already watches (executor
health, dispatcher liveness, missed firings). Per-job values come from the
store, at most every `refresh_seconds` whatever the scrape rate, with a
fixed number of queries however many jobs there are (no query per job):
one for the jobs' names and schedules, one for the latest success per
job and one for the latest finished run per job. A job's next fire time is
computed again only when it has passed or the job's schedule changed. The series are
rendered from that snapshot at each refresh, so a deleted job's series
disappear with it.

`job` carries the crontrio job name: scrape the monitor with
`honor_labels: true` (deploy/prometheus/alerts.yml).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import and_, func, select

from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.common.cron import CronSchedule
from crontrio.common.jobs import schedule_of
from crontrio.common.model import Job
from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.schema import jobs, runs
from crontrio.common.store.sql_store import SqlStore

log = logging.getLogger(__name__)


@dataclass
class _JobState:
    name: str
    # What the next fire time depends on: a plain-SQL edit may leave updated_ms alone.
    version: tuple[int, bool, str, str]
    enabled: bool
    cron: CronSchedule | None = None
    next_ms: int = 0  # 0: paused, runs only after other jobs, or nothing ahead


@dataclass
class JobSnapshot:
    """Per-job values as of one refresh."""

    jobs: dict[int, _JobState] = field(default_factory=dict)
    last_success_ms: dict[int, int] = field(default_factory=dict)
    last_status: dict[int, str] = field(default_factory=dict)


class JobStats:
    """Reads the per-job values from the store (call `read` off the event loop)."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self.snapshot = JobSnapshot()

    def read(self, at_ms: int) -> JobSnapshot:
        previous = self.snapshot.jobs
        current: dict[int, _JobState] = {}
        with self._store.engine.connect() as conn:
            listed = select(jobs.c.id, jobs.c.name, jobs.c.updated_ms, jobs.c.enabled, jobs.c.spec, jobs.c.timezone)
            for job_id, name, updated_ms, enabled, spec, timezone in conn.execute(listed):
                version = (int(updated_ms), bool(enabled), str(spec), str(timezone))
                known = previous.get(job_id)
                if known is not None and known.version == version and known.name == name:
                    current[job_id] = known
                else:
                    current[job_id] = _new_state(int(job_id), str(name), version)
            succeeded = conn.execute(
                select(runs.c.job_id, func.max(runs.c.finished_ms))
                .where(runs.c.status == status.SUCCEEDED)
                .group_by(runs.c.job_id)
            ).all()
            # The latest finished run of each job: its newest firing, newest attempt.
            newest = (
                select(runs.c.job_id, func.max(runs.c.scheduled_ms).label("at"))
                .where(runs.c.status.in_(status.FINISHED))
                .group_by(runs.c.job_id)
                .subquery()
            )
            latest = conn.execute(
                select(runs.c.job_id, runs.c.attempt, runs.c.status)
                .join(newest, and_(runs.c.job_id == newest.c.job_id, runs.c.scheduled_ms == newest.c.at))
                .where(runs.c.status.in_(status.FINISHED))
            ).all()
        for state in current.values():
            if state.cron is not None and state.next_ms <= at_ms:
                state.next_ms = state.cron.next_after(at_ms) or 0
        attempts: dict[int, int] = {}
        last_status: dict[int, str] = {}
        for job_id, attempt, run_status in latest:
            # Highest attempt wins; among shards of it, a failure over a success.
            if attempt > attempts.get(job_id, 0) or (attempt == attempts[job_id] and run_status != status.SUCCEEDED):
                attempts[job_id], last_status[job_id] = attempt, run_status
        self.snapshot = JobSnapshot(
            current,
            {int(job_id): int(ms) for job_id, ms in succeeded if job_id in current},
            {job_id: s for job_id, s in last_status.items() if job_id in current},
        )
        return self.snapshot


def _new_state(job_id: int, name: str, version: tuple[int, bool, str, str]) -> _JobState:
    _, enabled, spec, timezone = version
    state = _JobState(name, version, enabled)
    if enabled:
        try:
            state.cron = schedule_of(Job(id=job_id, name=name, spec=spec, command="", timezone=timezone))
        except Exception as exc:  # noqa: BLE001 - an invalid job is not scheduled: no next fire time
            log.debug("job %s has no schedule for metrics: %r", name, exc)
    return state


class MonitorMetrics(Collector):
    """Everything the monitor exports. The cluster-wide values are read at
    each scrape (this collector); the per-job series are rendered as text
    once per refresh, off the event loop: prometheus_client's generic
    exposition took 4-6 s for 100,000 jobs, per scrape, on the loop."""

    def __init__(
        self,
        *,
        executors_up: Callable[[], int],
        dispatchers_up: Callable[[], int],
        firings_missed: Callable[[], int],
        stats: JobStats | None,
        store: AsyncStore | None = None,
        refresh_seconds: float = 15.0,
    ) -> None:
        """`stats` None: no per-job series ([monitor] per_job_metrics = false)."""
        self._executors_up = executors_up
        self._dispatchers_up = dispatchers_up
        self._firings_missed = firings_missed
        self._stats = stats
        self._store = store  # its threads read the per-job values
        self._refresh_seconds = refresh_seconds
        self._refreshed_at = -float("inf")
        self._lock = asyncio.Lock()
        self._per_job_text = b""
        self.registry = CollectorRegistry()
        self.registry.register(self)

    async def exposition(self) -> bytes:
        """The body of /metrics: the per-job values refreshed if due, then everything."""
        try:
            await self.refresh()
        except Exception as exc:  # noqa: BLE001 - a store problem serves the previous values, never a 500
            log.warning("per-job metrics not refreshed, serving the previous values: %r", exc)
        return generate_latest(self.registry) + self._per_job_text

    async def refresh(self) -> None:
        """Read the per-job values again if they are older than the refresh interval."""
        if self._stats is None or self._store is None:
            return
        async with self._lock:  # concurrent scrapes share one read
            if time.monotonic() - self._refreshed_at < self._refresh_seconds:
                return
            stats = self._stats
            self._per_job_text = await self._store.run_blocking(lambda: render_per_job(stats.read(now_ms())))
            self._refreshed_at = time.monotonic()

    def collect(self) -> Iterable[Metric]:
        yield _gauge(
            "crontrio_executors_up", "Executors the monitor finds healthy (answering their health checks).", self._executors_up()
        )
        yield _gauge(
            "crontrio_dispatchers_up", "Dispatchers alive (registered in etcd, or answering the monitor).", self._dispatchers_up()
        )
        missed = CounterMetricFamily(
            "crontrio_firings",
            "Firings the monitor recorded as missed (no dispatcher ran them); the dispatchers export the other outcomes.",
            labels=["outcome"],
        )
        missed.add_metric(["missed"], self._firings_missed())
        yield missed


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _label(value: str) -> str:
    """A label value in the text format: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_per_job(snapshot: JobSnapshot) -> bytes:
    """The per-job series in the Prometheus text format (0.0.4), one family after another."""
    success = [
        "# HELP crontrio_job_last_success_timestamp_seconds End of the job's last succeeded run (Unix time; 0: never).",
        "# TYPE crontrio_job_last_success_timestamp_seconds gauge",
    ]
    next_fire = [
        "# HELP crontrio_job_next_fire_timestamp_seconds "
        "The job's next scheduled firing (Unix time; 0: paused, or runs only after other jobs).",
        "# TYPE crontrio_job_next_fire_timestamp_seconds gauge",
    ]
    last = [
        "# HELP crontrio_job_last_status 1 for the status of the job's latest finished run (one series per job).",
        "# TYPE crontrio_job_last_status gauge",
    ]
    for job_id, state in snapshot.jobs.items():
        job = _label(state.name)
        success.append(
            f'crontrio_job_last_success_timestamp_seconds{{job="{job}"}} {snapshot.last_success_ms.get(job_id, 0) / 1000!r}'
        )
        next_ms = state.next_ms if state.enabled else 0
        next_fire.append(f'crontrio_job_next_fire_timestamp_seconds{{job="{job}"}} {next_ms / 1000!r}')
        run_status = snapshot.last_status.get(job_id)
        if run_status is not None:
            last.append(f'crontrio_job_last_status{{job="{job}",status="{_label(run_status)}"}} 1.0')
    return ("\n".join(success + next_fire + last) + "\n").encode()
