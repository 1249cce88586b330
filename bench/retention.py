"""retention: how fast the monitor's pruning deletes, and how long a
dispatcher's write waits meanwhile.

    .venv/bin/python -m bench.retention [--runs 200000] [--jobs 50] [-c conf.ini]

Builds a run history of --runs finished runs over --jobs jobs and 60 days
(bulk SQL), then prunes it with the shipped defaults of [store] (30 days,
100 per job, 500 rows per transaction) but no pause, while a writer thread
inserts one run every 10 ms as a dispatcher would. Prints rows/s, the
transactions, the writer's worst insert latency and, on SQLite, the file
size before and after a refill (freed pages are reused: the file stays put).

By default it works on a fresh SQLite file in a temp dir. With -c it uses
that conf's [database] (e.g. a scratch MariaDB) and refuses one that already
holds runs: it never touches real history.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select

from crontrio.common.config import DatabaseConfig, StoreConfig, load_config
from crontrio.common.store.engine import make_engine
from crontrio.common.store.migrate import ensure_schema
from crontrio.common.store.retention import DAY_MS, RetentionPolicy, prune
from crontrio.common.store.schema import runs


def _row(run_id: str, job_id: int, scheduled_ms: int) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "job_id": job_id,
        "job_name": f"job{job_id}",
        "scheduled_ms": scheduled_ms,
        "attempt": 1,
        "status": "succeeded",
        "dispatcher": "bench",
        "executor": "127.0.0.1:5921",
        "host": "bench",
        "pid": 1,
        "exit_code": 0,
        "started_ms": scheduled_ms,
        "finished_ms": scheduled_ms + 100,
        "output": b"ok\n" * 300,  # ~1 KB of output, as a chatty job leaves
        "output_truncated": False,
        "error": "",
        "created_ms": scheduled_ms,
        "updated_ms": scheduled_ms,
        "shard": 0,
        "shard_total": 0,
        "trigger": "",
    }


def fill(engine: Engine, count: int, jobs: int, now_ms: int, tag: str) -> float:
    started = time.monotonic()
    step = 60 * DAY_MS // max(1, count // jobs)
    batch: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for i in range(count):
            job_id = i % jobs + 1
            scheduled = now_ms - 60 * DAY_MS + (i // jobs) * step
            batch.append(_row(f"{tag}-{i}", job_id, scheduled))
            if len(batch) == 5_000:
                conn.execute(insert(runs), batch)
                batch = []
        if batch:
            conn.execute(insert(runs), batch)
    return time.monotonic() - started


class Writer(threading.Thread):
    """Inserts one run every 10 ms and records how long each insert took."""

    def __init__(self, engine: Engine, now_ms: int) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.now_ms = now_ms
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            started = time.monotonic()
            with self.engine.begin() as conn:
                conn.execute(insert(runs), [_row(f"live-{i}", 10_000, self.now_ms + i)])
            self.latencies.append(time.monotonic() - started)
            i += 1
            self.stop.wait(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200_000)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("-c", "--conf", help="use this conf's [database] (must hold no runs)")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="crontrio-bench-retention-")
    scratch = DatabaseConfig(driver="sqlite", path=os.path.join(tmp.name, "bench.db"))
    db = load_config(args.conf).database if args.conf else scratch
    engine = make_engine(db)
    ensure_schema(engine, db)
    with engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(runs)).scalar_one():
            raise SystemExit(f"{db.driver} database already holds runs: use an empty scratch database")

    now = time.time_ns() // 1_000_000
    policy = RetentionPolicy.from_config(StoreConfig())
    filled = fill(engine, args.runs, args.jobs, now, "a")
    size = Path(db.path).stat().st_size if db.driver == "sqlite" else 0

    writer = Writer(engine, now)
    writer.start()
    report = prune(engine, policy, now)
    writer.stop.set()
    writer.join()

    refill_size = 0
    if db.driver == "sqlite":  # refill as much as went: does the file grow?
        fill(engine, report.runs, args.jobs, now - 31 * DAY_MS, "b")
        refill_size = Path(db.path).stat().st_size
    lat = sorted(writer.latencies) or [0.0]
    result = {
        "database": db.driver,
        "runs": args.runs,
        "jobs": args.jobs,
        "fill_seconds": round(filled, 2),
        "pruned_runs": report.runs,
        "prune_seconds": round(report.seconds, 2),
        "rows_per_second": round(report.rows_per_second),
        "transactions": report.transactions,
        "largest_transaction": report.largest_transaction,
        "writer_inserts": len(writer.latencies),
        "writer_p50_ms": round(lat[len(lat) // 2] * 1000, 1),
        "writer_max_ms": round(lat[-1] * 1000, 1),
        "sqlite_file_mb": round(size / 2**20, 1),
        "sqlite_file_after_refill_mb": round(refill_size / 2**20, 1),
    }
    print(json.dumps(result, indent=2))
    engine.dispose()
    tmp.cleanup()


if __name__ == "__main__":
    main()
