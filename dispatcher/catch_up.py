"""Misfire policy: firings missed while every dispatcher was down.

At start a dispatcher looks, for each job whose policy is run_once or
run_all, at the firings between the job's last recorded run and now (within
its catch-up window) that nobody ran: run_all fires each, run_once fires the
latest and records the others as missed with the reason. Fire ids are the
original ones, so several dispatchers starting together still run each once,
and a firing the monitor already recorded as missed is not run late.
(Jobs with the default policy, skip, are left to the monitor's missed-firing
check, which records them.)
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from crontrio.common.clock import now_ms
from crontrio.common.cron import CronSchedule
from crontrio.common.jobs import schedule_of
from crontrio.common.missed import missed_record
from crontrio.common.model import MISFIRE_RUN_ALL, MISFIRE_RUN_ONCE, TRIGGER_CATCH_UP, Job, iso_ms
from crontrio.common.store.async_store import AsyncStore
from crontrio.dispatcher.recorder import RunRecorder

log = logging.getLogger(__name__)
MAX_CATCH_UP_FIRINGS = 1000  # per job: a run_all job with a tiny interval must not flood the executors
# The first look back for missed firings; grows fourfold until it holds enough.
_FIRST_SPAN_MS = 60_000


def missed_firings(job: Job, last_ms: int, now: int) -> list[int]:
    """Fire times after the last recorded one, within the job's window, before
    now: the latest MAX_CATCH_UP_FIRINGS of them when there are more (run_once
    runs the last one, which must be the latest firing, not the 1,000th after
    the last run)."""
    cron = schedule_of(job)
    if cron is None:
        return []
    start = max(last_ms, job.created_ms, now - int(job.catch_up_window_seconds * 1000))
    return latest_firings(cron, start, now)


def latest_firings(cron: CronSchedule, after_ms: int, before_ms: int, limit: int = MAX_CATCH_UP_FIRINGS) -> list[int]:
    """The latest `limit` fire times strictly between the two instants, in order.

    Walking a whole span (a week of an every-second job: 600,000 steps) would
    stall the dispatcher, and fire times can only be found forwards: look back
    over a growing span until it holds enough firings."""
    span = _FIRST_SPAN_MS
    while True:
        low = max(after_ms, before_ms - span)
        latest: deque[int] = deque(maxlen=limit)
        found = 0
        t = cron.next_after(low)
        while t is not None and t < before_ms:
            latest.append(t)
            found += 1
            t = cron.next_after(t)
        if low == after_ms or found >= limit:
            return list(latest)
        span *= 4


async def catch_up(
    jobs: Iterable[Job],
    store: AsyncStore,
    recorder: RunRecorder,
    fire: Callable[[Job, int, str], Coroutine[Any, Any, None]],
    spawn: Callable[[Coroutine[Any, Any, None], str], None],
    dispatcher_id: str,
) -> int:
    """Fire what the jobs' misfire policies ask for; returns how many firings were started."""
    wanted = [j for j in jobs if j.misfire_policy in (MISFIRE_RUN_ONCE, MISFIRE_RUN_ALL) and j.spec]
    if not wanted:
        return 0
    last = await store.last_fired([j.id for j in wanted])
    now = now_ms()
    started = 0
    for job in wanted:
        if job.id not in last:
            continue  # never ran: nothing was missed since a run we know of
        missed = missed_firings(job, last[job.id], now)
        if not missed:
            continue
        to_run = missed if job.misfire_policy == MISFIRE_RUN_ALL else missed[-1:]
        log.warning(
            "job %s missed %s%d firings while no dispatcher ran (since %s); misfire policy %s: running %d",
            job.name,
            "the latest " if len(missed) == MAX_CATCH_UP_FIRINGS else "",
            len(missed),
            iso_ms(missed[0]),
            job.misfire_policy,
            len(to_run),
        )
        for ms in missed[: len(missed) - len(to_run)]:
            await recorder.insert(
                missed_record(
                    job,
                    ms,
                    "missed while no dispatcher ran; misfire policy run_once ran only the latest",
                    at_ms=now,
                    dispatcher=dispatcher_id,
                    trigger=TRIGGER_CATCH_UP,
                )
            )
        for ms in to_run:
            spawn(fire(job, ms, TRIGGER_CATCH_UP), f"catch-up-{job.id}-{ms}")
            started += 1
    return started
