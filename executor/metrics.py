"""The executor's Prometheus metrics (README "Metrics").

One hook in runs.py (every result it produces goes through it); the gauges
are read at scrape time. Labels are bounded: run statuses only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from crontrio.common import status
from crontrio.protos import crontrio_pb2

# From 10 ms (an HTTP ping) to a day (a long nightly batch).
RUN_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)


class ExecutorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.running = Gauge(
            "crontrio_executor_runs_running",
            "Runs this executor has going (held for their time included).",
            registry=self.registry,
        )
        self.runs = Counter(
            "crontrio_executor_runs_total",
            "Results this executor produced, by status (lost: runs that died with a previous executor process; "
            "not_started: held runs handed back at shutdown).",
            ["status"],
            registry=self.registry,
        )
        # not_started: held runs handed back unstarted at shutdown (another executor runs them).
        self._runs = {s: self.runs.labels(s) for s in sorted(status.FINISHED | {status.NOT_STARTED})}
        self.duration = Histogram(
            "crontrio_executor_run_duration_seconds",
            "How long the runs this executor started took, from start to end.",
            buckets=RUN_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.unacked = Gauge(
            "crontrio_executor_journal_unacked",
            "Finished results no dispatcher has acknowledged yet (journaled or kept in memory).",
            registry=self.registry,
        )
        self._count_unacked: Callable[[], Awaitable[int]] | None = None
        self.warmed_connections = Counter(
            "crontrio_executor_http_connections_warmed_total",
            "Connections of HTTP runs held for their time made ready before it (ready: in the pool at the "
            "instant; failed: not made in time, the run connects itself and reports any error).",
            ["outcome"],
            registry=self.registry,
        )
        self._warmed = {o: self.warmed_connections.labels(o) for o in ("ready", "failed")}

    def watch(self, running: Callable[[], int], unacked: Callable[[], Awaitable[int]]) -> None:
        """Read the running runs and the unacknowledged results at each scrape."""
        self.running.set_function(lambda: float(running()))
        self._count_unacked = unacked

    async def refresh(self) -> None:
        """Before a scrape: what must be read asynchronously (the journal)."""
        if self._count_unacked is not None:
            self.unacked.set(await self._count_unacked())

    # -- hooks ------------------------------------------------------------

    def warmed(self, ready: int, failed: int) -> None:
        """A warm-up of HTTP connections ended (executor/http_warmup.py)."""
        if ready:
            self._warmed["ready"].inc(ready)
        if failed:
            self._warmed["failed"].inc(failed)

    def finished(self, result: crontrio_pb2.RunFinished) -> None:
        """A result was produced. Its duration counts when its task ran in this
        process: not for a run stopped before its start (started_ms 0), nor for
        one lost with a previous process (its end is when we found it dead)."""
        counter = self._runs.get(result.status)
        if counter is not None:
            counter.inc()
        if result.started_ms and result.status != status.LOST:
            self.duration.observe(max(0, result.finished_ms - result.started_ms) / 1000)
