"""Retention: delete old run history and audit entries in small batches.

The rules ([store] in conf.ini):

* a run is deleted only when it is finished (common.status.FINISHED: never
  pending, running or queued), was scheduled more than ``keep_runs_days``
  ago, and is not among the ``keep_runs_per_job`` newest runs of its job
  (by scheduled time; runs tied with the N-th newest are kept too);
* an audit entry is deleted when it is older than ``keep_audit_days``;
* 0 days = keep forever.

Every delete is its own short transaction of at most ``batch_rows`` rows,
found through indexes (runs by (job_id, scheduled_ms), the leading columns
of ix_runs_job_scheduled_id; audit entries by at_ms, ix_audit_at), so a
prune never holds a lock the dispatchers' run writes would wait on for long. ``prune_steps`` yields after
each transaction so the caller can pause between them (the monitor does, on
its event loop; see monitor/retention.py).

SQLite does not give deleted pages back to the file system: they go on the
file's free list and new rows reuse them, so pruning stops the growth but
does not shrink the file. `VACUUM` (services stopped) shrinks it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, select

from crontrio.common import status
from crontrio.common.config import StoreConfig
from crontrio.common.store.schema import audit_log, runs

DAY_MS = 24 * 3600 * 1000
_FINISHED = sorted(status.FINISHED)


@dataclass(frozen=True)
class RetentionPolicy:
    keep_runs_days: float = 30.0  # 0 = keep forever
    keep_runs_per_job: int = 100
    keep_audit_days: float = 180.0  # 0 = keep forever
    batch_rows: int = 500

    @classmethod
    def from_config(cls, cfg: StoreConfig) -> RetentionPolicy:
        return cls(cfg.keep_runs_days, cfg.keep_runs_per_job, cfg.keep_audit_days, cfg.prune_batch_rows)

    def __post_init__(self) -> None:
        if self.keep_runs_per_job < 1 or self.batch_rows < 1:
            raise ValueError("keep_runs_per_job and batch_rows must be at least 1")


@dataclass(frozen=True)
class Step:
    """One committed delete transaction."""

    table: str  # "runs" or "audit_log"
    rows: int


@dataclass
class PruneReport:
    runs: int = 0
    audit: int = 0
    transactions: int = 0
    largest_transaction: int = 0  # rows; never more than the policy's batch_rows
    seconds: float = 0.0

    def add(self, step: Step) -> None:
        if step.table == "runs":
            self.runs += step.rows
        else:
            self.audit += step.rows
        self.transactions += 1
        self.largest_transaction = max(self.largest_transaction, step.rows)

    @property
    def deleted(self) -> int:
        return self.runs + self.audit

    @property
    def rows_per_second(self) -> float:
        return self.deleted / self.seconds if self.seconds > 0 else 0.0


def prune_steps(engine: Engine, policy: RetentionPolicy, now_ms: int) -> Iterator[Step]:
    """Prune lazily: each next() runs the reads for one batch and commits
    one delete of at most ``policy.batch_rows`` rows. No connection or
    transaction is held between two steps."""
    if policy.keep_runs_days > 0:
        yield from _run_steps(engine, policy, now_ms - int(policy.keep_runs_days * DAY_MS))
    if policy.keep_audit_days > 0:
        yield from _audit_steps(engine, policy, now_ms - int(policy.keep_audit_days * DAY_MS))


def prune(
    engine: Engine,
    policy: RetentionPolicy,
    now_ms: int,
    pause_seconds: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> PruneReport:
    """Prune everything due, pausing between transactions; blocking (for
    tools and tests; the monitor drives prune_steps itself)."""
    report = PruneReport()
    started = time.monotonic()
    for step in prune_steps(engine, policy, now_ms):
        report.add(step)
        if pause_seconds > 0:
            sleep(pause_seconds)
    report.seconds = time.monotonic() - started
    return report


def _job_ids(engine: Engine) -> Iterator[int]:
    """Every job id that has runs, ascending: one index seek each (a loose
    index scan by hand; SQLite's DISTINCT would read the whole index)."""
    last: int | None = None
    while True:
        query = select(func.min(runs.c.job_id))
        if last is not None:
            query = query.where(runs.c.job_id > last)
        with engine.connect() as conn:
            found = conn.execute(query).scalar()
        if found is None:
            return
        last = int(found)
        yield last


def _job_cutoff(engine: Engine, job_id: int, age_cutoff_ms: int, keep: int) -> int | None:
    """Runs of this job scheduled before the returned time may go; None when
    the job has no more than `keep` runs."""
    query = (
        select(runs.c.scheduled_ms).where(runs.c.job_id == job_id).order_by(runs.c.scheduled_ms.desc()).limit(1).offset(keep - 1)
    )
    with engine.connect() as conn:
        nth_newest = conn.execute(query).scalar()
    if nth_newest is None:
        return None
    return min(age_cutoff_ms, int(nth_newest))


def _run_steps(engine: Engine, policy: RetentionPolicy, age_cutoff_ms: int) -> Iterator[Step]:
    batch = policy.batch_rows
    pending: list[str] = []  # run ids found, not yet deleted; fills across jobs
    for job_id in _job_ids(engine):
        cutoff = _job_cutoff(engine, job_id, age_cutoff_ms, policy.keep_runs_per_job)
        if cutoff is None:
            continue
        while True:
            want = batch - len(pending)
            query = (
                select(runs.c.run_id)
                .where(runs.c.job_id == job_id, runs.c.scheduled_ms < cutoff, runs.c.status.in_(_FINISHED))
                .order_by(runs.c.scheduled_ms)
                .limit(want)
            )
            with engine.connect() as conn:
                found = [str(r) for r in conn.execute(query).scalars()]
            pending += found
            if len(pending) >= batch:
                yield _delete_runs(engine, pending)
                pending = []
            if len(found) < want:
                break  # this job has nothing more to delete
    if pending:
        yield _delete_runs(engine, pending)


def _delete_runs(engine: Engine, run_ids: list[str]) -> Step:
    with engine.begin() as conn:
        # The status again: nothing that is not finished is ever deleted,
        # even if it changed since it was found.
        result = conn.execute(delete(runs).where(runs.c.run_id.in_(run_ids), runs.c.status.in_(_FINISHED)))
    return Step("runs", int(result.rowcount))


def _audit_steps(engine: Engine, policy: RetentionPolicy, cutoff_ms: int) -> Iterator[Step]:
    while True:
        oldest = select(audit_log.c.id).where(audit_log.c.at_ms < cutoff_ms).order_by(audit_log.c.at_ms)
        with engine.begin() as conn:
            ids = list(conn.execute(oldest.limit(policy.batch_rows)).scalars())
            if not ids:
                return
            deleted = int(conn.execute(delete(audit_log).where(audit_log.c.id.in_(ids))).rowcount)
        yield Step("audit_log", deleted)
        if len(ids) < policy.batch_rows:
            return
