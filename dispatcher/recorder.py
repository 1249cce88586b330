"""Run history writes, grouped into one transaction per short interval.

At 1,000 firings a second, a transaction per write would be the bottleneck
(and on SQLite, the single writer lock). Callers enqueue; a background task
commits everything queued in one transaction and resolves the futures of
callers that need to know the outcome (inserts, and updates that must be
durable before the executor is told it may forget a result). Batches form
naturally: what is queued while a commit runs goes into the next one, so a
lone firing is not delayed; `batch_ms` > 0 adds a fixed wait to make batches
larger still (fewer, bigger transactions for a database across a network).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from crontrio.common.model import RunRecord
from crontrio.common.store.async_store import DbThreads
from crontrio.common.store.sql_store import SqlStore

log = logging.getLogger(__name__)

# A write that waited longer than this means the database (or this process's
# CPU) cannot keep up with the firing rate: queued writes then grow without
# bound, and so does the dispatcher's memory. Say so, at most once a minute.
BEHIND_WARN_SECONDS = 5.0
BEHIND_WARN_EVERY_SECONDS = 60.0


@dataclass
class _Batch:
    inserts: list[RunRecord] = field(default_factory=list)
    insert_futures: list[asyncio.Future[bool]] = field(default_factory=list)
    updates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    update_futures: list[asyncio.Future[None]] = field(default_factory=list)
    # When its first write was queued (monotonic; 0: empty).
    since: float = 0.0

    def queued(self) -> None:
        if not self.since:
            self.since = time.monotonic()

    def __bool__(self) -> bool:
        return bool(self.inserts or self.updates)


class RunRecorder:
    def __init__(self, store: SqlStore, db: DbThreads, batch_ms: int = 20) -> None:
        self._store = store
        self._db = db
        self._batch_seconds = batch_ms / 1000
        self._pending = _Batch()
        self._has_work = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._warned_at = -BEHIND_WARN_EVERY_SECONDS
        # How long the last committed batch's oldest write waited (seconds).
        self.behind_seconds = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="run-recorder")

    async def insert(self, record: RunRecord) -> bool:
        """Record a new run; False if that firing attempt is already recorded (by anyone)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.inserts.append(record)
        self._pending.insert_futures.append(future)
        self._pending.queued()
        self._has_work.set()
        return await future

    def update(self, run_id: str, **fields: Any) -> asyncio.Future[None]:
        """Queue an update; await the returned future when it must be durable."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.updates.append((run_id, fields))
        self._pending.update_futures.append(future)
        self._pending.queued()
        self._has_work.set()
        return future

    async def _loop(self) -> None:
        while True:
            await self._has_work.wait()
            if self._batch_seconds and not self._closing:
                await asyncio.sleep(self._batch_seconds)  # let the batch fill
            self._has_work.clear()
            batch, self._pending = self._pending, _Batch()
            if batch:
                await self._commit(batch)
            if self._closing and not self._pending:
                return

    async def _commit(self, batch: _Batch) -> None:
        # A failed commit is retried: losing run history silently is worse
        # than a late write. Callers keep waiting meanwhile.
        delay = 0.1
        while True:
            try:
                created = await self._db.run(self._store.write_runs, batch.inserts, batch.updates)
                break
            except Exception as exc:  # noqa: BLE001 - any DB error: log loudly, retry
                log.error(
                    "writing %d run inserts / %d updates failed, retrying in %.1fs: %s",
                    len(batch.inserts),
                    len(batch.updates),
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._note_delay(batch, len(self._pending.inserts) + len(self._pending.updates))
        for future, was_created in zip(batch.insert_futures, created, strict=True):
            if not future.done():
                future.set_result(was_created)
        for done in batch.update_futures:
            if not done.done():
                done.set_result(None)

    def _note_delay(self, batch: _Batch, still_queued: int) -> None:
        now = time.monotonic()
        self.behind_seconds = now - batch.since
        if self.behind_seconds > BEHIND_WARN_SECONDS and now - self._warned_at >= BEHIND_WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning(
                "run history writes are %.1fs behind (%d inserts / %d updates just written, %d more queued): "
                "the database or this dispatcher's CPU cannot keep up with the firing rate",
                self.behind_seconds,
                len(batch.inserts),
                len(batch.updates),
                still_queued,
            )

    async def close(self) -> None:
        """Write everything queued, then stop."""
        self._closing = True
        self._has_work.set()
        if self._task is not None:
            await self._task
