"""The burst scenario's APScheduler 3 peer: one process, BackgroundScheduler,
MemoryJobStore, N jobs on a CronTrigger naming one second (year, month, day,
hour, minute, second: crontrio's spec for the same burst), each body one HTTP
GET to the bench's HTTP sink, so the lag is measured where crontrio's is: at
the sink (arrival - due time), by bench/burst.py.

Runs inside bench/.venv-peers (stdlib + APScheduler only):
    python -m bench.peers.apscheduler_burst --jobs N --due EPOCH_S --url http://127.0.0.1:PORT --result FILE

The body keeps one HTTP/1.1 keep-alive connection per pool thread (the lean
client an APScheduler user would write; APScheduler gives no client of its
own). It writes its CPU (/proc/self/stat) just before the burst and once every
body has returned (or --grace seconds after the due time) to --result.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any

from apscheduler import __version__ as apscheduler_version
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from bench.peers.common import proc_stats

POOL_WORKERS = 10  # APScheduler's default ThreadPoolExecutor size
# As in the fire_lag peer: late firings run late (their lag shows) instead of
# being dropped after APScheduler's default 1 s grace.
JOB_DEFAULTS = {"misfire_grace_time": 60, "coalesce": False, "max_instances": 1}
CPU_BEFORE_S = 3.0  # the CPU reading before the burst: this long before the due second

_local = threading.local()
_host = "127.0.0.1"
_port = 0
_done = 0
_errors: Counter[str] = Counter()
_lock = threading.Lock()
_all_done = threading.Event()
_jobs = 0


def loadavg() -> list[str]:
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def body(job: int) -> None:
    """GET /j/<job> on the sink over this thread's keep-alive connection."""
    global _done
    try:
        conn = getattr(_local, "conn", None)
        if conn is None:
            conn = _local.conn = http.client.HTTPConnection(_host, _port, timeout=30)
        try:
            conn.request("GET", f"/j/{job}")
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            conn.close()  # the sink closed it: one retry on a new one
            conn = _local.conn = http.client.HTTPConnection(_host, _port, timeout=30)
            conn.request("GET", f"/j/{job}")
            conn.getresponse().read()
    except Exception as exc:  # noqa: BLE001 - counted and reported, never lost
        with _lock:
            _errors[repr(exc)[:100]] += 1
    with _lock:
        _done += 1
        if _done >= _jobs:
            _all_done.set()


def main(argv: list[str] | None = None) -> None:
    global _host, _port, _jobs
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, required=True)
    ap.add_argument("--due", type=int, required=True, help="the burst's second, epoch seconds (UTC)")
    ap.add_argument("--url", required=True, help="the sink, http://HOST:PORT")
    ap.add_argument("--grace", type=float, default=60.0, help="give up this long after the due time")
    ap.add_argument("--result", required=True)
    args = ap.parse_args(argv)
    hostport = args.url.removeprefix("http://").rstrip("/")
    _host, _, port = hostport.partition(":")
    _port, _jobs = int(port), args.jobs

    work = tempfile.mkdtemp(prefix="peer-apscheduler-burst-")
    logging.basicConfig(filename=os.path.join(work, "apscheduler.log"), level=logging.WARNING)
    events: Counter[str] = Counter()

    def listener(event: JobEvent) -> None:
        name = {EVENT_JOB_MISSED: "missed", EVENT_JOB_MAX_INSTANCES: "max_instances", EVENT_JOB_ERROR: "error"}[event.code]
        with _lock:
            events[name] += 1

    scheduler = BackgroundScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(POOL_WORKERS)},
        job_defaults=JOB_DEFAULTS,
        timezone="UTC",
    )
    scheduler.add_listener(listener, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR)
    due = dt.datetime.fromtimestamp(args.due, dt.UTC)
    trigger_kw: dict[str, Any] = {
        "year": due.year,
        "month": due.month,
        "day": due.day,
        "hour": due.hour,
        "minute": due.minute,
        "second": due.second,
        "timezone": "UTC",
    }
    t0 = time.time()
    for i in range(args.jobs):
        scheduler.add_job(body, CronTrigger(**trigger_kw), args=(i,), id=f"job-{i}", name=f"job-{i}")
    scheduler.start()
    ready = time.time()
    me = os.getpid()
    delay = args.due - CPU_BEFORE_S - time.time()
    if delay > 0:
        time.sleep(delay)
    before = proc_stats(me)
    load_before = loadavg()
    finished = _all_done.wait(max(0.0, args.due + args.grace - time.time()))
    after = proc_stats(me)
    load_after = loadavg()
    with _lock:
        counted, errors, done = dict(events), dict(_errors), _done
    result = {
        "peer": f"APScheduler {apscheduler_version}, BackgroundScheduler, MemoryJobStore, "
        f"default ThreadPoolExecutor({POOL_WORKERS}) in the same process",
        "trigger": "CronTrigger(year, month, day, hour, minute, second of the due time, timezone='UTC')",
        "job_defaults": JOB_DEFAULTS,
        "task": "one HTTP GET /j/<job> to the sink over a per-thread keep-alive http.client connection",
        "setup_seconds": round(ready - t0, 2),
        "ready_before_due_s": round(args.due - ready, 2),
        "all_bodies_returned": finished,
        "bodies_returned": done,
        "body_errors": errors,
        "apscheduler_events": {"missed": 0, "max_instances": 0, "error": 0, **counted},
        "cpu_before": before,
        "cpu_after": after,
        "cpu_window_end_ms": int(time.time() * 1000),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "python": sys.version.split()[0],
    }
    with open(args.result, "w") as f:
        json.dump(result, f)
    scheduler.shutdown(wait=False)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    from bench.peers.apscheduler_burst import main as _main

    _main()
