"""How each job of a page's recent runs went: latest run and success rate.

One statement per page of jobs (the console's jobs list shows 50), a UNION
ALL of one branch per job, each reading that job's newest RECENT runs from
the (job_id, scheduled_ms, attempt, run_id) index (ix_runs_job_scheduled_id)
backwards and stopping there. So the cost is bounded by page size x RECENT
rows whatever the size of the runs table (1,000,000 runs, or one job with
500,000 of them), with no per-job round trip and no table scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, select, union_all

from crontrio.common import status
from crontrio.common.store.schema import runs

RECENT = 20  # runs per job the success rate is computed over
# Branches per statement: SQLite's default cap on compound SELECTs is 500.
_CHUNK = 200
# Outcomes a success rate counts (skipped, queued and active runs are not outcomes).
OUTCOMES = status.FINISHED - {status.SKIPPED}


@dataclass(frozen=True)
class RunStats:
    last_run_id: str = ""
    last_status: str = ""
    last_scheduled_ms: int = 0
    last_started_ms: int = 0
    last_finished_ms: int = 0
    recent_finished: int = 0
    recent_succeeded: int = 0


def _branch(job_id: int, recent: int) -> Select[Any]:
    newest = (
        select(
            runs.c.job_id,
            runs.c.run_id,
            runs.c.status,
            runs.c.scheduled_ms,
            runs.c.started_ms,
            runs.c.finished_ms,
            runs.c.attempt,
        )
        .where(runs.c.job_id == job_id)
        .order_by(runs.c.scheduled_ms.desc(), runs.c.attempt.desc(), runs.c.run_id.desc())
        .limit(recent)
        .subquery()
    )
    # Wrapped: SQLite allows ORDER BY / LIMIT in a UNION member only inside a subquery.
    return select(newest)


def job_run_stats(engine: Engine, job_ids: Sequence[int], recent: int = RECENT) -> dict[int, RunStats]:
    """RunStats per job id (jobs without runs are left out)."""
    newest: dict[int, list[tuple[int, int, str, str, int, int]]] = {}
    wanted = sorted(set(job_ids))
    with engine.connect() as conn:
        for start in range(0, len(wanted), _CHUNK):
            branches = [_branch(job_id, recent) for job_id in wanted[start : start + _CHUNK]]
            statement: Any = branches[0] if len(branches) == 1 else union_all(*branches)
            for row in conn.execute(statement).all():
                key = (int(row.scheduled_ms), int(row.attempt), str(row.run_id), str(row.status))
                newest.setdefault(int(row.job_id), []).append((*key, int(row.started_ms), int(row.finished_ms)))
    out: dict[int, RunStats] = {}
    for job_id, rows in newest.items():
        rows.sort(reverse=True)  # (scheduled, attempt, run_id) newest first, as the index reads
        scheduled, _, run_id, state, started, finished = rows[0]
        outcomes = [row[3] for row in rows if row[3] in OUTCOMES]
        out[job_id] = RunStats(
            last_run_id=run_id,
            last_status=state,
            last_scheduled_ms=scheduled,
            last_started_ms=started,
            last_finished_ms=finished,
            recent_finished=len(outcomes),
            recent_succeeded=outcomes.count(status.SUCCEEDED),
        )
    return out
