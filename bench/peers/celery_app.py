"""The Celery app the celery-redbeat peer runs: `celery -A bench.peers.celery_app`
beat (RedBeat scheduler) and one worker, on a private Redis.

Configured from the environment the driver (celery_peer.py) sets:
BENCH_REDIS_URL (redis://127.0.0.1:PORT), BENCH_JOBS, BENCH_RECORD_DIR, BENCH_READY_DIR,
BENCH_IGNORE_RESULT=1 for task_ignore_result (default: results are stored,
and beat then subscribes to each sent task's result channel, as Celery's
Redis backend does for every apply_async).

Every entry runs every second on whole-second boundaries:
`schedule(timedelta(seconds=1), relative=True)` (Celery's crontab has no
seconds field; a plain timedelta(seconds=1) is not aligned to the clock and
drifts by the beat's own lateness every firing). RedBeat stores it in Redis as
an 'interval' and keeps `relative`.

Beat sends a task with the entry's fixed args only; it cannot pass the time a
firing was meant for. So the scheduler is subclassed in one place: just before
RedBeat sends a due entry, it adds to that one message's kwargs the boundary
the entry was due at (the schedule's own `remaining_estimate` from the
entry's last run, which is how RedBeat decided it was due) and the send time.
Nothing of that is stored back in Redis; scheduling is RedBeat's.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from celery.schedules import schedule
from celery.signals import beat_init, worker_ready
from redbeat import RedBeatScheduler

from bench.peers.common import Recorder

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1")
JOBS = int(os.environ.get("BENCH_JOBS", "0"))
RECORD_DIR = os.environ.get("BENCH_RECORD_DIR", "/nonexistent")
READY_DIR = os.environ.get("BENCH_READY_DIR", "/nonexistent")
IGNORE_RESULT = os.environ.get("BENCH_IGNORE_RESULT", "") == "1"
EVERY_SECOND = schedule(run_every=timedelta(seconds=1), relative=True)

app = Celery("bench_peers")
app.conf.update(
    broker_url=f"{REDIS_URL}/0",
    result_backend=f"{REDIS_URL}/1",
    redbeat_redis_url=f"{REDIS_URL}/2",
    redbeat_key_prefix="bench-redbeat:",
    timezone="UTC",
    enable_utc=True,
    broker_connection_retry_on_startup=True,
    task_ignore_result=IGNORE_RESULT,
    beat_schedule={f"job-{i}": {"task": "bench.tick", "schedule": EVERY_SECOND, "args": (i,)} for i in range(JOBS)},
)

_recorder = Recorder(RECORD_DIR)


@app.task(name="bench.tick")
def tick(job: int, sched_ms: float | None = None, sent_ms: float | None = None) -> None:
    """The task body: records (job, scheduled time, send time, start time) and returns."""
    _recorder.record(job, sched_ms, sent_ms)


class BenchRedBeatScheduler(RedBeatScheduler):
    """RedBeat, telling each message which boundary it was sent for."""

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        now = time.time()
        if entry.last_run_at is None:
            sched_s = float(int(now))  # first run after start-up: due "now", in the warm-up
        else:
            sched_s = float(round(now + entry.schedule.remaining_estimate(entry.last_run_at).total_seconds()))
        entry.kwargs = {**(entry.kwargs or {}), "sched_ms": sched_s * 1000.0, "sent_ms": now * 1000.0}
        return super().apply_async(entry, producer, advance, **kwargs)


def _touch(name: str) -> None:
    Path(READY_DIR, name).write_text(str(os.getpid()))


@worker_ready.connect
def _worker_ready(**_: Any) -> None:
    _touch("worker")


@beat_init.connect
def _beat_ready(**_: Any) -> None:
    _touch("beat")
