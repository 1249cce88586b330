"""Drops journaled results no dispatcher acknowledged within
``[executor] keep_unacked_days``.

A result waits in the journal until a dispatcher (or the monitor's reconciler)
collects and acknowledges it. One still there after days will not be: its
dispatcher is gone for good, and the monitor has marked the run lost. Kept
forever, such results would make the journal grow without bound, so they are
dropped, each time with a WARNING that names how many and which run ids.
"""

from __future__ import annotations

import asyncio
import logging

from crontrio.common.clock import now_ms as wall_ms
from crontrio.executor.journal import Journal

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000
# A pass at start, then this often: a day's limit needs no finer grain.
INTERVAL_SECONDS = 3600.0


async def drop_stale_results(journal: Journal, keep_days: float, now_ms: int | None = None) -> list[str]:
    """Drop results older than ``keep_days`` (by finish time) and report them;
    returns the dropped run ids, oldest first."""
    now_ms = wall_ms() if now_ms is None else now_ms
    dropped = await journal.drop_unacked_older_than(now_ms - int(keep_days * DAY_MS))
    if dropped:
        log.warning(
            "journal: dropped %d result(s) no dispatcher acknowledged within %g day(s) (executor.keep_unacked_days): "
            "run ids %s .. %s (oldest first)",
            len(dropped),
            keep_days,
            dropped[0],
            dropped[-1],
        )
    return dropped


async def run(journal: Journal, keep_days: float, interval_seconds: float = INTERVAL_SECONDS) -> None:
    """Drop stale results now and every ``interval_seconds``, until cancelled."""
    while True:
        try:
            await drop_stale_results(journal, keep_days)
        except Exception as exc:  # noqa: BLE001 - a busy or full disk must not end the executor
            log.warning("journal: dropping stale results failed (will retry): %s", exc)
        await asyncio.sleep(interval_seconds)
