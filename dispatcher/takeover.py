"""Takes over firings whose claim winner died before recording them.

The Redis claim is a cheap pre-filter, not the record: a dispatcher can win
a claim and be killed before it inserts the run row. Everyone else dropped
that firing, so without this it would be missed. Losers therefore re-check,
shortly after, that a run row exists; if none does, they fire it after all.
The run table's unique key still lets only one of them run it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from common.model import Job, iso_ms
from common.store.async_store import DbThreads
from common.store.sql_store import SqlStore

log = logging.getLogger(__name__)
# How long a claim winner has to record its run; it normally takes one
# group commit (tens of milliseconds).
RECORD_DEADLINE_SECONDS = 0.5


class TakeoverWatch:
    def __init__(
        self,
        store: SqlStore,
        db: DbThreads,
        take_over: Callable[[Job, int], Coroutine[Any, Any, None]],
        spawn: Callable[[Coroutine[Any, Any, None], str], None],
    ) -> None:
        self._store = store
        self._db = db
        self._take_over = take_over
        self._spawn = spawn
        self._pending: list[tuple[float, Job, int]] = []
        self._wake = asyncio.Event()
        self.taken_over = 0

    def watch(self, job: Job, scheduled_ms: int) -> None:
        """Another dispatcher claimed this firing: make sure it gets recorded."""
        self._pending.append((time.monotonic() + RECORD_DEADLINE_SECONDS, job, scheduled_ms))
        self._wake.set()

    async def run(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            delay = self._pending[0][0] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            due = [p for p in self._pending if p[0] <= now]
            self._pending = [p for p in self._pending if p[0] > now]
            try:
                await self._check([(job, ms) for _, job, ms in due])
            except Exception as exc:  # noqa: BLE001 - the store may be briefly unreachable; try again
                log.warning("checking %d claimed firings failed, will retry: %s", len(due), exc)
                self._pending = [(now + RECORD_DEADLINE_SECONDS, j, ms) for _, j, ms in due] + self._pending

    async def _check(self, firings: list[tuple[Job, int]]) -> None:
        if not firings:
            return
        low = min(ms for _, ms in firings)
        high = max(ms for _, ms in firings) + 1
        recorded = await self._db.run(self._store.firings_between, low, high)
        for job, ms in firings:
            if (job.id, ms) not in recorded:
                self.taken_over += 1
                log.warning(
                    "job %s firing %s was claimed by another dispatcher but never recorded (did it die?): taking it over",
                    job.name,
                    iso_ms(ms),
                )
                self._spawn(self._take_over(job, ms), f"takeover-{job.id}-{ms}")
