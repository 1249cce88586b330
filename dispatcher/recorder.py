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
from dataclasses import dataclass, field
from typing import Any

from common.model import RunRecord
from common.store.async_store import DbThreads
from common.store.sql_store import SqlStore

log = logging.getLogger(__name__)


@dataclass
class _Batch:
    inserts: list[RunRecord] = field(default_factory=list)
    insert_futures: list[asyncio.Future[bool]] = field(default_factory=list)
    updates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    update_futures: list[asyncio.Future[None]] = field(default_factory=list)

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

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="run-recorder")

    async def insert(self, record: RunRecord) -> bool:
        """Record a new run; False if that firing attempt is already recorded (by anyone)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.inserts.append(record)
        self._pending.insert_futures.append(future)
        self._has_work.set()
        return await future

    def update(self, run_id: str, **fields: Any) -> asyncio.Future[None]:
        """Queue an update; await the returned future when it must be durable."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.updates.append((run_id, fields))
        self._pending.update_futures.append(future)
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
        for future, was_created in zip(batch.insert_futures, created, strict=True):
            if not future.done():
                future.set_result(was_created)
        for done in batch.update_futures:
            if not done.done():
                done.set_result(None)

    async def close(self) -> None:
        """Write everything queued, then stop."""
        self._closing = True
        self._has_work.set()
        if self._task is not None:
            await self._task
