"""The dispatcher's Prometheus metrics (README "Metrics").

The hooks are one call each at the places that decide an outcome
(firing.py: fired, claimed elsewhere; outcome.py: started; recorder.py: every status
written, so skipped, queued, missed and finished runs are counted once, by
the dispatcher that recorded them); everything else is read at scrape time.
Labels are bounded: outcomes and run statuses only, never a job.

A missed firing is counted by whoever records it as missed: a dispatcher's
misfire catch-up here, the monitor's missed-firing check there (firings a
frozen dispatcher dropped as too late, or that no dispatcher ran). Sum
crontrio_firings_total{outcome="missed"} over both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from crontrio.common import status
from crontrio.common.model import TRIGGER_SCHEDULE, RunRecord

FIRED = "fired"
SKIPPED = "skipped"
MISSED = "missed"
QUEUED = "queued"
CLAIMED_ELSEWHERE = "claimed_elsewhere"
OUTCOMES = (FIRED, SKIPPED, MISSED, QUEUED, CLAIMED_ELSEWHERE)
# From 1 ms (an idle dispatcher, firings sent ahead) to 60 s (the catch-up
# limit: a later firing is dropped as missed, see scheduler.MAX_CATCH_UP_MS).
FIRE_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# What an inserted run row says about its firing (overlap policy, misfire catch-up).
_INSERTED_OUTCOME = {status.SKIPPED: SKIPPED, status.MISSED: MISSED, status.QUEUED: QUEUED}


class DispatcherMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.firings = Counter(
            "crontrio_firings_total",
            "Firings this dispatcher handled, by outcome: fired (ran), skipped (overlap policy), missed "
            "(too late to run), queued (overlap policy queue), claimed_elsewhere (another dispatcher has it).",
            ["outcome"],
            registry=self.registry,
        )
        self._firing = {outcome: self.firings.labels(outcome) for outcome in OUTCOMES}
        self.fire_lag = Histogram(
            "crontrio_fire_lag_seconds",
            "Run start minus its scheduled time, for the first attempt of scheduled firings.",
            buckets=FIRE_LAG_BUCKETS,
            registry=self.registry,
        )
        self.runs_finished = Counter(
            "crontrio_runs_finished_total",
            "Runs this dispatcher recorded as finished, by status.",
            ["status"],
            registry=self.registry,
        )
        self._finished = {s: self.runs_finished.labels(s) for s in sorted(status.FINISHED)}
        self.scheduled_jobs = Gauge(
            "crontrio_scheduled_jobs", "Jobs this dispatcher has scheduled (enabled, valid).", registry=self.registry
        )

    def count_scheduled(self, count: Callable[[], int]) -> None:
        """crontrio_scheduled_jobs is `count()` at each scrape."""
        self.scheduled_jobs.set_function(lambda: float(count()))

    # -- hooks ------------------------------------------------------------

    def firing(self, outcome: str, n: int = 1) -> None:
        self._firing[outcome].inc(n)

    def started(self, record: RunRecord, started_ms: int) -> None:
        """A run started on its executor: the fire lag of a firing's first attempt
        (not a retry, which starts late on purpose, nor a manual run)."""
        if record.attempt == 1 and started_ms and record.trigger == TRIGGER_SCHEDULE:
            self.fire_lag.observe(max(0, started_ms - record.scheduled_ms) / 1000)

    def committed(
        self, inserts: Sequence[RunRecord], created: Sequence[bool], updates: Sequence[tuple[str, dict[str, Any]]]
    ) -> None:
        """A batch of run history was written: count what it finished."""
        for record, was_created in zip(inserts, created, strict=True):
            if not was_created:
                continue
            outcome = _INSERTED_OUTCOME.get(record.status)
            if outcome is not None:
                self._firing[outcome].inc()
            if record.status in self._finished:
                self._finished[record.status].inc()
        for _run_id, fields in updates:
            run_status = fields.get("status", "")
            counter = self._finished.get(run_status)
            if counter is not None:
                counter.inc()
                if run_status == status.MISSED:  # recorded too late to run (dispatcher/misfire.py)
                    self._firing[MISSED].inc()
