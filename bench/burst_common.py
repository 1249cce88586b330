"""What the burst scenario (bench/burst.py) and its peers (bench/burst_peers.py)
share: the due second's spec, the run table of either backend, the HTTP sink
and its lags, the load average."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql

from bench.harness import (
    Scenario,
    Service,
    free_port,
    tcp_ready,
    wait_for,
)

SCENARIO = "burst"
MODES = ("embedded", "distributed")
CPU_BEFORE_MS = 3000  # the burst window opens this long before the due second
READY_MARGIN_S = 2.0  # every job must be loaded this long before the due second (dispatch ahead is 1 s)
SETTLE_IDLE_S = 10.0  # a loaded 2-core machine can pause recording for seconds
FINISHED = "status NOT IN ('pending', 'running', 'queued')"


def loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def default_lead(jobs: int) -> int:
    """Seconds from writing the jobs to their due second: room to start the dispatchers and load them."""
    return 10 + jobs // 2500


def spec_for(due_s: int) -> str:
    t = time.gmtime(due_s)
    return f"{t.tm_sec} {t.tm_min} {t.tm_hour} {t.tm_mday} {t.tm_mon} *"


class Store:
    """The run table of either backend, for counting and reading the burst's runs."""

    def __init__(self, sql: Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]], mark: str) -> None:
        self._sql, self._mark = sql, mark

    def progress(self, due_ms: int) -> tuple[int, int, int]:
        """(run rows, runs started, runs recorded finished) of the burst."""
        rows, started, finished = self._sql(
            f"SELECT COUNT(*), SUM(started_ms > 0), SUM({FINISHED}) FROM runs WHERE scheduled_ms = {self._mark}", (due_ms,)
        )[0]
        return int(rows or 0), int(started or 0), int(finished or 0)

    def by_dispatcher(self, due_ms: int) -> dict[str, int]:
        rows = self._sql(
            f"SELECT dispatcher, COUNT(*) FROM runs WHERE scheduled_ms = {self._mark} GROUP BY dispatcher", (due_ms,)
        )
        return {str(d): int(n) for d, n in rows}

    def rows(self, due_ms: int) -> list[tuple[Any, ...]]:
        return self._sql(
            f"SELECT job_id, attempt, status, started_ms, finished_ms, dispatcher FROM runs WHERE scheduled_ms = {self._mark}",
            (due_ms,),
        )


def sqlite_store(db: Path) -> Store:
    def sql(statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            rows = conn.execute(statement, params).fetchall()
        conn.close()
        return list(rows)

    return Store(sql, "?")


def mysql_store(port: int, user: str, password: str, database: str) -> Store:
    def sql(statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = pymysql.connect(host="127.0.0.1", port=port, user=user, password=password, database=database, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return list(cur.fetchall())
        finally:
            conn.close()

    return Store(sql, "%s")


def wait_settled(store: Store, due_ms: int, expected: int, limit_s: float) -> int:
    """Poll until `expected` runs are recorded finished, or until nothing moved
    (no run recorded, started or finished) for SETTLE_IDLE_S after the due
    second; returns the finished count."""
    deadline = time.monotonic() + limit_s
    last, since = (-1, -1, -1), time.monotonic()
    while time.monotonic() < deadline:
        progress = store.progress(due_ms)
        if progress[2] >= expected:
            return progress[2]
        if progress != last or time.time() * 1000 < due_ms:
            last, since = progress, time.monotonic()
        elif time.monotonic() - since >= SETTLE_IDLE_S:
            return progress[2]
        time.sleep(0.2)
    return last[2]


def start_sink(sc: Scenario, name: str) -> tuple[Service, int, Path]:
    port = free_port()
    stats = sc.root / f"{name}.json"
    sink = sc.start(
        Service(
            name,
            [sys.executable, "-m", "bench.httpsink", "--port", str(port), "--stats", str(stats)],
            sc.root,
            sc.root / f"{name}.log",
        )
    )
    wait_for(lambda: sink.alive() and tcp_ready(port), 20, f"the HTTP sink {name}")
    return sink, port, stats


def sink_lags(stats: Path, jobs: int, due_ms: int) -> tuple[list[int], int, int, int]:
    """(lags of each job's first request, jobs arrived, duplicate requests, requests)."""
    data = json.loads(stats.read_text())
    lags, dups, arrived = [], 0, 0
    for i in range(jobs):
        seen = data["arrivals"].get(f"/j/{i}")
        if seen:
            arrived += 1
            lags.append(min(seen) - due_ms)
            dups += len(seen) - 1
    return lags, arrived, dups, int(data["requests"])
