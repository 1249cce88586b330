"""The run half of the SQL store: run history, written in batches and read
by page, by time window and by status.

A mixin of SqlStore (common/store/sql_store.py), which gives it the engine.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, update

from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.common.model import RunRecord
from crontrio.common.store.rows import row_to_run
from crontrio.common.store.run_batch import CHUNK_ROWS, RUN_COLUMNS, RunBatchWriter
from crontrio.common.store.schema import runs

_RUN_COLUMNS = frozenset(RUN_COLUMNS)


class RunQueries:
    """Runs: one row per firing attempt."""

    engine: Engine
    _dialect: str
    _batch_writer: RunBatchWriter | None

    def write_runs(self, inserts: Sequence[RunRecord], updates: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]:
        """One transaction: insert runs (skipping existing firings), then apply updates.

        Returns, per insert, whether this call created the row: False means
        the firing attempt was already recorded (by another dispatcher, or
        earlier). Updates of the same run are merged in order (later fields
        win). Both are written a batch per statement, not a row per
        statement (common/store/run_batch.py, with how "created" stays exact).
        """
        merged: dict[str, dict[str, Any]] = {}
        for run_id, fields in updates:
            unknown = set(fields) - _RUN_COLUMNS
            if unknown:
                raise ValueError(f"unknown run fields: {sorted(unknown)}")
            merged.setdefault(run_id, {}).update(fields)
        stamp = now_ms()
        by_columns: dict[tuple[str, ...], list[tuple[str, dict[str, Any]]]] = {}
        for run_id, fields in merged.items():
            by_columns.setdefault(tuple(sorted(fields)), []).append((run_id, fields))
        rows: list[dict[str, Any]] = []
        for record in inserts:
            row = {c: getattr(record, c) for c in RUN_COLUMNS}
            row["created_ms"] = row["created_ms"] or stamp
            row["updated_ms"] = row["created_ms"]
            rows.append(row)
        if self._batch_writer is None:
            self._batch_writer = RunBatchWriter(self.engine)
        return self._batch_writer.write(rows, by_columns, stamp)

    def finish_run_if_active(self, run_id: str, fields: dict[str, Any], dispatcher: str | None = None) -> bool:
        """Update a run only while it is still pending or running (and, with
        `dispatcher`, still owned by that dispatcher).

        The monitor settles orphaned runs with this; if the dispatcher, a
        dispatcher that adopted the run, or another monitor pass got there
        first, nothing is overwritten.
        """
        unknown = set(fields) - _RUN_COLUMNS
        if unknown:
            raise ValueError(f"unknown run fields: {sorted(unknown)}")
        where = [runs.c.run_id == run_id, runs.c.status.in_(sorted(status.ACTIVE))]
        if dispatcher is not None:
            where.append(runs.c.dispatcher == dispatcher)
        with self.engine.begin() as conn:
            result = conn.execute(update(runs).where(*where).values(**fields, updated_ms=now_ms()))
            return bool(result.rowcount == 1)

    def mark_overrun(self, run_id: str, at_ms: int) -> bool:
        """Record that an active run passed its timeout (timeout_action
        "alert"), once: True only for the call that set it. The dispatcher
        following the run and the monitor's scan (for a run whose dispatcher
        died) may both try; this conditional update is what makes the job's
        overrun alert go out exactly once."""
        where = [runs.c.run_id == run_id, runs.c.status.in_(sorted(status.ACTIVE)), runs.c.overrun_ms == 0]
        with self.engine.begin() as conn:
            result = conn.execute(update(runs).where(*where).values(overrun_ms=at_ms, updated_ms=now_ms()))
            return bool(result.rowcount == 1)

    def unstarted_runs_between(self, start_ms: int, end_ms: int, not_dispatcher: str) -> list[RunRecord]:
        """Pending runs scheduled in [start_ms, end_ms) that no executor has
        reported starting, recorded by dispatchers other than `not_dispatcher`."""
        query = select(runs).where(
            runs.c.scheduled_ms >= start_ms,
            runs.c.scheduled_ms < end_ms,
            runs.c.status == status.PENDING,
            runs.c.executor == "",
            runs.c.dispatcher != not_dispatcher,
        )
        with self.engine.connect() as conn:
            return [row_to_run(r) for r in conn.execute(query).mappings().all()]

    def adopt_runs(self, owned_by: Sequence[tuple[str, str]], new_dispatcher: str) -> set[str]:
        """Make `new_dispatcher` the owner of the given runs, each a pending
        run of its (dead) dispatcher, (run id, dispatcher), that no executor
        has reported starting; the run ids it now owns. A run that changed
        meanwhile (another adopter, the monitor, its executor) is left alone,
        so of two adopters, and the monitor, one wins each run.

        One transaction, all or nothing: a failure leaves every run as it
        was (none is owned here yet carried by nobody), and the caller may
        ask again. Per owner and chunk of CHUNK_ROWS run ids, one conditional
        UPDATE, then, only when it moved some but not all of them, a SELECT
        of the ones now ours, in the same transaction (MariaDB has no UPDATE
        ... RETURNING). That answer is exact: only this transaction gives a
        run to `new_dispatcher`, whose runs these were not (the caller read
        them as another's); its own changes are what it reads back, on
        MariaDB (the snapshot of a transaction includes its own writes) and
        on SQLite (the UPDATE took the one write lock until the commit).
        Run ids go in sorted order, so two adopters lock rows in the same
        order (InnoDB) and do not deadlock each other."""
        owners: dict[str, str] = {}
        for run_id, old in owned_by:
            if old == new_dispatcher:
                raise ValueError(f"run {run_id} is already {new_dispatcher}'s")
            owners.setdefault(run_id, old)
        by_owner: dict[str, list[str]] = {}
        for run_id, old in sorted(owners.items()):
            by_owner.setdefault(old, []).append(run_id)
        won: set[str] = set()
        stamp = now_ms()
        with self.engine.begin() as conn:
            for old, run_ids in sorted(by_owner.items()):
                for start in range(0, len(run_ids), CHUNK_ROWS):
                    chunk = run_ids[start : start + CHUNK_ROWS]
                    moved = conn.execute(
                        update(runs)
                        .where(
                            runs.c.run_id.in_(chunk),
                            runs.c.status == status.PENDING,
                            runs.c.executor == "",
                            runs.c.dispatcher == old,
                        )
                        .values(dispatcher=new_dispatcher, updated_ms=stamp)
                    ).rowcount
                    if moved == len(chunk):
                        won.update(chunk)
                    elif moved:
                        ours = select(runs.c.run_id).where(runs.c.run_id.in_(chunk), runs.c.dispatcher == new_dispatcher)
                        won.update(str(run_id) for (run_id,) in conn.execute(ours))
        return won

    def firings_between(self, start_ms: int, end_ms: int) -> set[tuple[int, int]]:
        """(job_id, scheduled_ms) of every run scheduled in [start_ms, end_ms)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(runs.c.job_id, runs.c.scheduled_ms)
                .where(runs.c.scheduled_ms >= start_ms, runs.c.scheduled_ms < end_ms)
                .distinct()
            ).all()
        return {(int(r.job_id), int(r.scheduled_ms)) for r in rows}

    def active_runs_of(self, job_id: int) -> list[RunRecord]:
        """Runs of the job still pending or running (for its overlap policy)."""
        query = select(runs).where(runs.c.job_id == job_id, runs.c.status.in_(sorted(status.ACTIVE)))
        with self.engine.connect() as conn:
            return [row_to_run(r) for r in conn.execute(query).mappings().all()]

    def queued_runs_of(self, job_id: int) -> list[RunRecord]:
        query = select(runs).where(runs.c.job_id == job_id, runs.c.status == status.QUEUED).order_by(runs.c.scheduled_ms)
        with self.engine.connect() as conn:
            return [row_to_run(r) for r in conn.execute(query).mappings().all()]

    def promote_queued(self, run_id: str) -> bool:
        """queued -> pending, once: the dispatcher that wins this starts the run."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(runs)
                .where(runs.c.run_id == run_id, runs.c.status == status.QUEUED)
                .values(status=status.PENDING, updated_ms=now_ms())
            )
            return bool(result.rowcount == 1)

    def last_fired(self, job_ids: Sequence[int]) -> dict[int, int]:
        """The newest scheduled time with a run, per job (for misfire catch-up)."""
        out: dict[int, int] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(job_ids), 500):
                chunk = list(job_ids[start : start + 500])
                rows = conn.execute(
                    select(runs.c.job_id, func.max(runs.c.scheduled_ms)).where(runs.c.job_id.in_(chunk)).group_by(runs.c.job_id)
                ).all()
                out.update({int(job_id): int(last) for job_id, last in rows})
        return out

    def get_run(self, run_id: str) -> RunRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.run_id == run_id)).mappings().first()
        return row_to_run(row) if row is not None else None

    def list_runs(
        self,
        *,
        job_id: int = 0,
        job_name: str = "",
        statuses: Sequence[str] = (),
        limit: int = 20,
        before_ms: int = 0,
        since_ms: int = 0,
        until_ms: int = 0,
        older_than: tuple[int, int, str] | None = None,
        with_output: bool = True,
    ) -> list[RunRecord]:
        """Runs newest first, by (scheduled_ms, attempt, run_id) descending: a
        total order, so a page boundary never falls between runs sharing a
        millisecond (every job on "0 * * * *" fires in the same one).

        `older_than` is the (scheduled_ms, attempt, run_id) of the last run
        of the previous page: only runs after it in that order. `since_ms` is
        inclusive, `until_ms` and `before_ms` (its older name) exclusive.
        Without `with_output` the output column is not even read (list
        pages are summaries; a page of 64 KiB tails exceeded gRPC's cap).
        """
        columns = [c for c in runs.columns if with_output or c.name != "output"]
        wanted = sorted(set(statuses))
        if len(wanted) > 1:
            # One index range scan per status (ix_runs_status_scheduled_id),
            # merged here: `status IN (...)` ordered by time made both
            # databases read and sort every run with those statuses.
            pages = [
                self._runs_page(columns, job_id, job_name, one, limit, until_ms or before_ms, since_ms, older_than)
                for one in wanted
            ]
            merged = heapq.merge(*pages, key=lambda r: (r.scheduled_ms, r.attempt, r.run_id), reverse=True)
            return list(itertools.islice(merged, limit))
        one = wanted[0] if wanted else ""
        return self._runs_page(columns, job_id, job_name, one, limit, until_ms or before_ms, since_ms, older_than)

    def _runs_page(
        self,
        columns: list[Any],
        job_id: int,
        job_name: str,
        run_status: str,
        limit: int,
        upper: int,
        since_ms: int,
        older_than: tuple[int, int, str] | None,
    ) -> list[RunRecord]:
        query = select(*columns)
        if upper:
            query = query.where(runs.c.scheduled_ms < upper)
        if since_ms:
            query = query.where(runs.c.scheduled_ms >= since_ms)
        if older_than is not None:
            at, attempt, run_id = older_than
            # The redundant `<= at` gives the database an index range to scan.
            query = query.where(
                runs.c.scheduled_ms <= at,
                or_(
                    runs.c.scheduled_ms < at,
                    runs.c.attempt < attempt,
                    and_(runs.c.attempt == attempt, runs.c.run_id < run_id),
                ),
            )
        if job_id:
            query = query.where(runs.c.job_id == job_id)
        elif job_name:
            query = query.where(runs.c.job_name == job_name)
        if run_status:
            query = query.where(runs.c.status == run_status)
        query = query.order_by(runs.c.scheduled_ms.desc(), runs.c.attempt.desc(), runs.c.run_id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [row_to_run(r) for r in conn.execute(query).mappings().all()]

    def active_runs_not_of(self, dispatchers: Sequence[str], limit: int) -> list[RunRecord]:
        """Pending or running runs whose dispatcher is none of `dispatchers`
        (the monitor's orphans), oldest first, without their output. The
        filter is the database's: in a burst thousands of runs are active,
        nearly all of them followed by a live dispatcher, and reading them
        all every pass to keep none was the monitor's largest cost."""
        columns = [c for c in runs.columns if c.name != "output"]
        query = select(*columns).where(runs.c.status.in_(sorted(status.ACTIVE)))
        if dispatchers:
            query = query.where(runs.c.dispatcher.notin_(sorted(set(dispatchers))))
        query = query.order_by(runs.c.scheduled_ms, runs.c.attempt, runs.c.run_id).limit(limit)
        with self.engine.connect() as conn:
            return [row_to_run(r) for r in conn.execute(query).mappings().all()]

    def running_started_before(self, before_ms: int, limit: int) -> list[RunRecord]:
        """Running runs that started before `before_ms`, oldest start first,
        without their output: the only ones that can be past a timeout by a
        grace of `now - before_ms`."""
        columns = [c for c in runs.columns if c.name != "output"]
        query = (
            select(*columns)
            .where(runs.c.status == status.RUNNING, runs.c.started_ms > 0, runs.c.started_ms < before_ms)
            .order_by(runs.c.started_ms)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [row_to_run(r) for r in conn.execute(query).mappings().all()]

    def count_runs_by_bucket(
        self, *, since_ms: int, until_ms: int, bucket_ms: int, job_name: str = ""
    ) -> dict[int, dict[str, int]]:
        """As count_runs, per bucket of bucket_ms from since_ms: {bucket start: {status: runs}},
        buckets with runs only. Read the same way (the index alone, per status)."""
        offset = runs.c.scheduled_ms - since_ms
        bucket = (offset - offset % bucket_ms).label("bucket")  # whole ms on both databases, no division
        where = [runs.c.scheduled_ms >= since_ms, runs.c.scheduled_ms < until_ms]
        out: dict[int, dict[str, int]] = {}
        with self.engine.connect() as conn:
            if job_name:
                query = (
                    select(bucket, runs.c.status, func.count())
                    .where(runs.c.job_name == job_name, *where)
                    .group_by(bucket, runs.c.status)
                )
                rows = [(int(b), str(state), int(n)) for b, state, n in conn.execute(query).all()]
            else:
                rows = []
                for state in sorted(status.ALL):
                    query = select(bucket, func.count()).where(runs.c.status == state, *where).group_by(bucket)
                    rows += [(int(b), state, int(n)) for b, n in conn.execute(query).all()]
        for b, state, n in rows:
            out.setdefault(since_ms + b, {})[state] = n
        return dict(sorted(out.items()))

    def count_runs(self, *, since_ms: int, until_ms: int = 0, job_name: str = "") -> dict[str, int]:
        """Runs scheduled in [since_ms, until_ms) by status (0 = no upper bound);
        statuses with none are left out.

        All jobs: one count per status, each over its own range of
        ix_runs_status_scheduled_id, read from the index alone (a GROUP BY
        status over the time range would visit every run's row). One job:
        its range of ix_runs_name_scheduled_id, grouped.
        """
        window = [runs.c.scheduled_ms >= since_ms]
        if until_ms:
            window.append(runs.c.scheduled_ms < until_ms)
        counts: dict[str, int] = {}
        with self.engine.connect() as conn:
            if job_name:
                query = select(runs.c.status, func.count()).where(runs.c.job_name == job_name, *window).group_by(runs.c.status)
                counts = {str(state): int(n) for state, n in conn.execute(query).all()}
            else:
                for state in sorted(status.ALL):
                    query = select(func.count()).select_from(runs).where(runs.c.status == state, *window)
                    counts[state] = int(conn.execute(query).scalar_one())
        return {state: n for state, n in counts.items() if n}
