"""APScheduler 3 peers: one process, BackgroundScheduler, N jobs on
CronTrigger(second='*'), job store in memory or SQLite (SQLAlchemyJobStore).

Runs inside bench/.venv-peers:
    python -m bench.peers.apscheduler_peer --store memory|sqlite --jobs N --seconds S ...

The job body is a no-op that records its start. APScheduler does not hand a
job its scheduled run time, so the default thread-pool executor is
subclassed in one place only: it runs each due run time through APScheduler's
own `run_job` (misfire check, events) one at a time, with that run time in a
thread-local the body reads. Scheduling, misfire handling and the pool itself
are APScheduler's.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any

from apscheduler import __version__ as apscheduler_version
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.base import run_job
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from bench.peers.common import (
    Contamination,
    Recorder,
    cpu_window,
    emit,
    make_result,
    proc_stats,
    read_starts,
    score,
    sleep_until,
    utc_now_iso,
)

POOL_WORKERS = 10  # APScheduler's default ThreadPoolExecutor size
JOB_DEFAULTS = {
    # crontrio starts a firing up to 60 s late and never merges firings; the
    # APScheduler defaults (misfire_grace_time=1, coalesce=True) would drop
    # late firings silently instead of showing their lag.
    "misfire_grace_time": 60,
    "coalesce": False,
    "max_instances": 1,  # APScheduler's default, kept
}

_current = threading.local()
_recorder: Recorder | None = None


def body(job: int) -> None:
    """The job: records (job, scheduled time, start time) and returns."""
    assert _recorder is not None
    _recorder.record(job, getattr(_current, "run_ms", None))


def _run_each(job: Any, jobstore_alias: str, run_times: list[Any], logger_name: str) -> list[Any]:
    events = []
    for run_time in run_times:
        _current.run_ms = run_time.timestamp() * 1000.0
        events.extend(run_job(job, jobstore_alias, [run_time], logger_name))
    return events


class RecordingThreadPoolExecutor(ThreadPoolExecutor):
    """APScheduler's ThreadPoolExecutor; only tells the body which run time it is for."""

    def _do_submit_job(self, job: Any, run_times: list[Any]) -> None:
        def callback(f: Any) -> None:
            exc = f.exception()
            if exc:
                self._run_job_error(job.id, exc, getattr(exc, "__traceback__", None))
            else:
                self._run_job_success(job.id, f.result())

        f = self._pool.submit(_run_each, job, job._jobstore_alias, run_times, self._logger.name)
        f.add_done_callback(callback)


def main(argv: list[str] | None = None) -> None:
    global _recorder
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", choices=("memory", "sqlite"), required=True)
    ap.add_argument("--jobs", type=int, required=True)
    ap.add_argument("--seconds", type=int, required=True)
    ap.add_argument("--warmup", type=float, required=True)
    ap.add_argument("--grace", type=float, required=True)
    ap.add_argument("--result", required=True, help="write the result JSON here")
    ap.add_argument(
        "--apscheduler-defaults",
        action="store_true",
        help="APScheduler's own job defaults (misfire_grace_time=1, coalesce=True); variant 'apscheduler-defaults'",
    )
    args = ap.parse_args(argv)

    job_defaults = {} if args.apscheduler_defaults else JOB_DEFAULTS
    started_at = utc_now_iso()
    work = tempfile.mkdtemp(prefix=f"peer-apscheduler-{args.store}-")
    logging.basicConfig(filename=os.path.join(work, "apscheduler.log"), level=logging.WARNING)
    _recorder = Recorder(work)
    events: Counter[str] = Counter()
    events_lock = threading.Lock()
    first_error: list[str] = []

    def listener(event: JobEvent) -> None:
        name = {EVENT_JOB_MISSED: "missed", EVENT_JOB_MAX_INSTANCES: "max_instances", EVENT_JOB_ERROR: "error"}[event.code]
        with events_lock:
            events[name] += 1
            if name == "error" and not first_error:
                first_error.append(f"{event.exception!r}\n{event.traceback}")

    if args.store == "memory":
        from apscheduler.jobstores.memory import MemoryJobStore

        store: Any = MemoryJobStore()
        store_desc = "MemoryJobStore"
    else:
        import sqlalchemy
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

        url = f"sqlite:///{os.path.join(work, 'jobs.sqlite')}"
        store = SQLAlchemyJobStore(url=url)
        store_desc = f"SQLAlchemyJobStore(url='sqlite:///<tmp>/jobs.sqlite'), SQLAlchemy {sqlalchemy.__version__}"

    scheduler = BackgroundScheduler(
        jobstores={"default": store},
        executors={"default": RecordingThreadPoolExecutor(POOL_WORKERS)},
        job_defaults=job_defaults,
        timezone="UTC",
    )
    scheduler.add_listener(listener, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR)
    t0 = time.time()
    # Added before start (as an app does at boot): start() then stores them
    # one by one; adding them to a running SQLite-backed scheduler instead
    # competes with its own job processing and takes minutes for 1,000 jobs.
    for i in range(args.jobs):
        scheduler.add_job(body, CronTrigger(second="*", timezone="UTC"), args=(i,), id=f"job-{i}", name=f"job-{i}")
    scheduler.start()
    ready = time.time()

    me = os.getpid()
    window_start = math.ceil(ready) + math.ceil(args.warmup)
    window_end = window_start + args.seconds
    sleep_until(window_start)
    at_start = {"scheduler": proc_stats(me)}
    contamination = Contamination({me})
    sleep_until(window_end)
    at_end = {"scheduler": proc_stats(me)}
    others = contamination.finish(cpu_window(at_start, at_end))
    tail_end = window_end + args.grace
    sleep_until(tail_end)
    final = {"scheduler": proc_stats(me)}
    with events_lock:
        counted = dict(events)
    scheduler.shutdown(wait=False)

    starts = [(j, s, st) for j, s, _sent, st in read_starts(work) if s is not None and st <= tail_end * 1000]
    scored = score(starts, args.jobs, window_start, args.seconds)
    result = make_result(
        f"apscheduler-{args.store}",
        {"jobs": args.jobs, "seconds": args.seconds},
        started_at,
        scored,
        final,
        {
            "peer": f"APScheduler {apscheduler_version}, BackgroundScheduler, {store_desc}, "
            f"default ThreadPoolExecutor({POOL_WORKERS}) in the same process",
            "trigger": "CronTrigger(second='*', timezone='UTC')",
            "job_defaults": job_defaults or "APScheduler's own (misfire_grace_time=1, coalesce=True, max_instances=1)",
            "task": "no-op Python function in the scheduler's own process that records its start",
            "scheduled_time_source": "APScheduler's own run_time for that execution (passed to the body by the "
            "executor subclass), exact",
            "setup_seconds": round(ready - t0, 2),
            "warmup_seconds": round(window_start - ready, 2),
            "window": {"start_epoch_s": window_start, "seconds": args.seconds},
            "collection_tail_seconds": args.grace,
            "apscheduler_events": {"missed": 0, "max_instances": 0, "error": 0, **counted},
            "first_job_error": first_error[0] if first_error else None,
            "cpu_seconds_window": cpu_window(at_start, at_end),
            **others,
            "python": sys.version.split()[0],
        },
        variant="apscheduler-defaults" if args.apscheduler_defaults else "",
    )
    emit(result, args.result)
    shutil.rmtree(work, ignore_errors=True)
    sys.stdout.flush()
    # The pool may still hold late firings; they are past the tail and not counted.
    os._exit(0)


if __name__ == "__main__":
    # Run as the importable module, so the jobs' func ref
    # ('bench.peers.apscheduler_peer:body', pickled by the SQLite store) and
    # the recorder are the same objects, not a second copy under __main__.
    from bench.peers.apscheduler_peer import main as _main

    _main()
