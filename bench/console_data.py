"""A large, realistic history for the console_pages bench, loaded straight
into the database (executemany of plain tuples: ~1M rows in a minute or two).

The shape, seeded so every run loads the same data:
- jobs named team.verb-noun-NNNNNN over 20 teams; daily specs at an hour that
  does not come up during the bench (nothing fires while pages are timed);
  a tenth paused; zones UTC, Asia/Shanghai, Asia/Tokyo.
- runs over the last 30 days: 1% of the jobs are frequent (about 60% of all
  runs), the rest run a few times each; 2% of the jobs fail every run, the
  others mostly succeed (failed, timeout, killed, lost, skipped, missed mixed
  in); a handful running or pending now.
- output: most runs leave none, a quarter a line or two, 2% a 4 KiB tail.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from crontrio.common.model import Job, make_run_id
from crontrio.common.store.rows import job_values
from crontrio.common.store.schema import jobs as jobs_table
from crontrio.common.store.schema import runs as runs_table

DAY_MS = 86_400_000
TEAMS = (
    "billing", "payments", "search", "ads", "mail", "reports", "etl", "backup", "infra", "auth",
    "catalog", "orders", "shipping", "crm", "analytics", "ml", "cdn", "dns", "security", "support",
)  # fmt: skip
VERBS = ("sync", "export", "import", "clean", "rotate", "check", "build", "send", "index", "compact")
NOUNS = ("users", "invoices", "logs", "cache", "reports", "images", "orders", "events", "tokens", "feeds")
ZONES = (("UTC", 0), ("Asia/Shanghai", 8), ("Asia/Tokyo", 9))
# Share of the runs of a healthy job, by outcome (the rest succeed).
OUTCOMES = (("failed", 0.03), ("timeout", 0.005), ("killed", 0.002), ("lost", 0.003), ("skipped", 0.01), ("missed", 0.005))
BATCH = 2000


@dataclass
class Loaded:
    """What the bench needs to know about the data to ask for it."""

    jobs: int = 0
    runs: int = 0
    seconds: float = 0.0
    sample_jobs: list[str] = field(default_factory=list)  # names of ordinary jobs (a few runs each)
    hot_jobs: list[str] = field(default_factory=list)  # names of frequent jobs
    sample_runs: list[str] = field(default_factory=list)
    middle_run: tuple[int, int, str] = (0, 0, "")  # the cursor of a run half-way back in time
    status_counts: dict[str, int] = field(default_factory=dict)


def job_name(i: int) -> str:
    team = TEAMS[i % len(TEAMS)]
    return f"{team}.{VERBS[(i // 20) % 10]}-{NOUNS[(i // 200) % 10]}-{i:06d}"


def _job_rows(count: int, quiet_hours: list[int]) -> Iterator[tuple[Any, ...]]:
    now = int(time.time() * 1000)
    columns = [c.name for c in jobs_table.columns if c.name != "id"]
    for i in range(1, count + 1):
        zone, offset = ZONES[i % len(ZONES)]
        hour = (quiet_hours[i % len(quiet_hours)] + offset) % 24
        job = Job(
            name=job_name(i),
            spec=f"{i % 60} {hour} * * *",
            command=f"/opt/jobs/{job_name(i).split('.')[0]}/run.sh --task {i} >> /var/log/jobs/{i}.log",
            timezone=zone,
            enabled=i % 10 != 0,
            timeout_seconds=600.0,
        )
        values = {**job_values(job), "created_ms": now - 40 * DAY_MS, "updated_ms": now - 40 * DAY_MS}
        yield tuple(values[c] for c in columns)


def _quiet_hours(now: dt.datetime) -> list[int]:
    """UTC hours at least 3 h away from now: no job fires during a bench of under 3 hours."""
    return [(now.hour + k) % 24 for k in range(4, 22)]


def _output(rng: random.Random, status: str, i: int) -> bytes:
    roll = rng.random()
    if roll < 0.02:
        line = f"[{i}] step {{}} done: processed 1284 records in 0.82 s\n"
        return "".join(line.format(n) for n in range(60)).encode()[:4096]
    if roll < 0.27 or status != "succeeded":
        return b"Traceback (most recent call last):\n  ...\nRuntimeError: upstream said 503\n" if status == "failed" else b"ok\n"
    return b""


def _status(rng: random.Random, failing: bool) -> str:
    if failing:
        return "failed" if rng.random() < 0.9 else "timeout"
    roll = rng.random()
    for name, share in OUTCOMES:
        if roll < share:
            return name
        roll -= share
    return "succeeded"


def _run_rows(jobs: int, runs: int, now_ms: int, seed: int, loaded: Loaded) -> Iterator[tuple[Any, ...]]:
    """About `runs` runs; each job's runs evenly over 30 days at whole seconds (ids never clash)."""
    rng = random.Random(seed)
    hot = max(1, jobs // 100)
    hot_runs = int(runs * 0.6) if jobs > 1 else runs
    per_hot, rest = hot_runs // hot, runs - (hot_runs // hot) * hot
    span = 30 * DAY_MS - 60_000
    columns = [c.name for c in runs_table.columns]
    produced = 0
    for job_id in range(1, jobs + 1):
        if job_id <= hot:
            count = per_hot
        else:
            left = jobs - job_id + 1
            count = rest // left + (1 if rng.random() < (rest % left) / left else 0)
            rest -= count
        if count <= 0:
            continue
        name = job_name(job_id)
        failing = job_id % 50 == 7
        step = span // count // 1000 * 1000 or 1000
        first = now_ms - 30 * DAY_MS + rng.randrange(0, max(1000, step), 1000)
        for k in range(count):
            scheduled = first + k * step
            # A few runs in progress now, each the newest of its job.
            in_progress = k == count - 1 and job_id % 5000 == 1
            if in_progress:
                scheduled = max(scheduled, now_ms // 1000 * 1000 - 60_000)
            status = ("running" if job_id % 10000 == 1 else "pending") if in_progress else _status(rng, failing)
            started = scheduled + rng.randrange(0, 200)
            active = status in ("running", "pending")
            finished = 0 if active or status in ("skipped", "missed") else started + rng.randrange(50, 120_000)
            row = {
                "run_id": make_run_id(job_id, scheduled, 1),
                "job_id": job_id,
                "job_name": name,
                "scheduled_ms": scheduled,
                "attempt": 1,
                "status": status,
                "dispatcher": "d1",
                "executor": "" if status in ("skipped", "missed", "pending") else f"10.0.0.{job_id % 8 + 1}:5921",
                "host": "" if status in ("skipped", "missed", "pending") else f"worker-{job_id % 8 + 1}",
                "pid": 0 if status in ("skipped", "missed", "pending") else 1000 + produced % 30000,
                "exit_code": {"succeeded": 0, "failed": 1}.get(status, -1),
                "started_ms": 0 if status in ("skipped", "missed", "pending") else started,
                "finished_ms": finished,
                "output": b"" if status in ("skipped", "missed", "pending") else _output(rng, status, produced),
                "output_truncated": False,
                "error": {"timeout": "timed out after 600 s", "lost": "executor went away", "killed": "killed by alice"}.get(
                    status, ""
                ),
                "created_ms": scheduled,
                "updated_ms": finished or scheduled,
                "shard": 0,
                "shard_total": 0,
                "trigger": "",
                "overrun_ms": 0,  # the runs column of migration 0009
            }
            loaded.status_counts[status] = loaded.status_counts.get(status, 0) + 1
            produced += 1
            yield tuple(row[c] for c in columns)
        if job_id in (hot // 2, hot):
            loaded.hot_jobs.append(name)
        elif job_id % (jobs // 20 or 1) == 3 and count:
            loaded.sample_jobs.append(name)
            loaded.sample_runs.append(make_run_id(job_id, first, 1))
    loaded.runs = produced


def _insert_sql(engine: Engine, table: Any, columns: list[str]) -> str:
    mark = "?" if engine.dialect.name == "sqlite" else "%s"
    quote = engine.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    return f"INSERT INTO {table.name} ({names}) VALUES ({', '.join([mark] * len(columns))})"


def _load(engine: Engine, table: Any, columns: list[str], rows: Iterator[tuple[Any, ...]]) -> None:
    sql = _insert_sql(engine, table, columns)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH:
                cur.executemany(sql, batch)  # pymysql turns this into multi-row INSERTs
                raw.commit()
                batch = []
        if batch:
            cur.executemany(sql, batch)
        raw.commit()
        cur.close()
    finally:
        raw.close()


def load(engine: Engine, jobs: int, runs: int, seed: int = 13) -> Loaded:
    """Fills an empty, migrated store; returns what was loaded."""
    started = time.monotonic()
    loaded = Loaded(jobs=jobs)
    now = dt.datetime.now(dt.UTC)
    now_ms = int(now.timestamp() * 1000)
    job_columns = [c.name for c in jobs_table.columns if c.name != "id"]
    _load(engine, jobs_table, job_columns, _job_rows(jobs, _quiet_hours(now)))
    _load(engine, runs_table, [c.name for c in runs_table.columns], _run_rows(jobs, runs, now_ms, seed, loaded))
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        # The planner's statistics, as a database that has been in use has them.
        cur.execute("ANALYZE" if engine.dialect.name == "sqlite" else "ANALYZE TABLE jobs, runs")
        if engine.dialect.name != "sqlite":
            cur.fetchall()
        middle = now_ms - 15 * DAY_MS
        mark = "?" if engine.dialect.name == "sqlite" else "%s"
        cur.execute(
            "SELECT scheduled_ms, attempt, run_id FROM runs WHERE scheduled_ms <= "
            f"{mark} ORDER BY scheduled_ms DESC, attempt DESC, run_id DESC LIMIT 1",
            (middle,),
        )
        row = cur.fetchone()
        if row is None:
            raise RuntimeError("no run loaded: nothing to page through")
        at, attempt, run_id = row
        loaded.middle_run = (int(at), int(attempt), str(run_id))
        cur.close()
        raw.commit()
    finally:
        raw.close()
    loaded.seconds = time.monotonic() - started
    return loaded


def describe(loaded: Loaded) -> dict[str, Any]:
    return json.loads(json.dumps({k: v for k, v in loaded.__dict__.items() if k not in ("sample_runs",)}))
