"""The Celery app of the burst scenario's celery-redbeat peer: `celery -A
bench.peers.celery_burst_app` beat (RedBeat) and one worker on a private Redis.

What "due at the same second" means here: Celery's crontab has no seconds
field, so every entry's schedule is RedBeat's own `rrule('SECONDLY',
dtstart=<the due second>, count=1)`: one firing at exactly that UTC second,
the same instant crontrio's `S M H D Mon *` spec and APScheduler's
CronTrigger name. Beat sends each entry when RedBeat finds it due; the worker
(default prefork pool) runs the body: one HTTP GET /j/<job> to the bench's
sink over a per-process keep-alive connection, then a line in the record dir
(so the driver knows when every body has returned). The lag is measured at
the sink, as for crontrio.

Configured from the environment the driver (celery_burst.py) sets:
BENCH_REDIS_URL, BENCH_JOBS, BENCH_DUE (epoch seconds), BENCH_SINK
(http://HOST:PORT), BENCH_RECORD_DIR, BENCH_READY_DIR.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_ready
from redbeat.schedules import rrule

from bench.peers.common import Recorder

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1")
JOBS = int(os.environ.get("BENCH_JOBS", "0"))
DUE = dt.datetime.fromtimestamp(int(os.environ.get("BENCH_DUE", "0")), dt.UTC)
SINK = os.environ.get("BENCH_SINK", "http://127.0.0.1:1").removeprefix("http://")
RECORD_DIR = os.environ.get("BENCH_RECORD_DIR", "/nonexistent")
READY_DIR = os.environ.get("BENCH_READY_DIR", "/nonexistent")
ONCE_AT_DUE = rrule("SECONDLY", dtstart=DUE, count=1)

app = Celery("bench_burst")
app.conf.update(
    broker_url=f"{REDIS_URL}/0",
    result_backend=f"{REDIS_URL}/1",
    redbeat_redis_url=f"{REDIS_URL}/2",
    redbeat_key_prefix="bench-burst:",
    timezone="UTC",
    enable_utc=True,
    broker_connection_retry_on_startup=True,
    beat_schedule={f"job-{i}": {"task": "bench.burst_get", "schedule": ONCE_AT_DUE, "args": (i,)} for i in range(JOBS)},
)

_recorder = Recorder(RECORD_DIR)
_conn: dict[int, http.client.HTTPConnection] = {}


def _get(job: int) -> None:
    pid = os.getpid()
    conn = _conn.get(pid)
    if conn is None:
        host, _, port = SINK.partition(":")
        conn = _conn[pid] = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", f"/j/{job}")
    conn.getresponse().read()


@app.task(name="bench.burst_get")
def burst_get(job: int) -> None:
    try:
        _get(job)
    except (OSError, http.client.HTTPException):
        _conn.pop(os.getpid(), None)  # the sink closed it: one retry on a new one
        _get(job)
    _recorder.record(job, None)


def _touch(name: str) -> None:
    Path(READY_DIR, name).write_text(str(os.getpid()))


@worker_ready.connect
def _worker_ready(**_: Any) -> None:
    _touch("worker")


@beat_init.connect
def _beat_ready(**_: Any) -> None:
    _touch("beat")
