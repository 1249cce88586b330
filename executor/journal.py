"""The local result journal: finished runs kept until a dispatcher acks them.

A dispatcher that dies mid-run must lose nothing (DESIGN, "The life of a
firing", step 8), so every RunFinished is written here before it is sent, and
only dropped on Ack. It is one small SQLite file per executor host; its
contents outlive executor restarts.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from protos import crontrio_pb2

log = logging.getLogger(__name__)

T = TypeVar("T")

# SQLite's limit on bound variables is far higher in modern builds, but
# small batches keep every statement cheap and portable.
_IN_BATCH = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    run_id      TEXT PRIMARY KEY,
    finished_ms INTEGER NOT NULL,
    result      BLOB NOT NULL       -- a serialized crontrio.v1.RunFinished
)
"""


class Journal:
    """Unacknowledged RunFinished results in a SQLite file.

    All SQLite work happens on one dedicated thread: the event loop never
    blocks on disk, and one connection used by one thread needs no locking.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._db: sqlite3.Connection | None = None

    async def open(self) -> None:
        await self._call(self._open)
        log.info("journal %s open, %d unacknowledged result(s)", self.path, await self.count())

    async def close(self) -> None:
        await self._call(self._close)
        self._thread.shutdown(wait=True)

    async def put(self, result: crontrio_pb2.RunFinished) -> None:
        """Store (or replace) one result; durable when this returns."""
        data = result.SerializeToString()
        await self._call(self._put, result.run_id, result.finished_ms, data)

    async def get(self, run_id: str) -> crontrio_pb2.RunFinished | None:
        rows = await self._call(self._select, [run_id])
        return rows[0] if rows else None

    async def results(self, run_ids: Sequence[str] = ()) -> list[crontrio_pb2.RunFinished]:
        """All stored results, or only those of ``run_ids``, oldest first."""
        return await self._call(self._select, list(run_ids) or None)

    async def delete(self, run_ids: Iterable[str]) -> int:
        """Drop these results; returns how many were stored."""
        return await self._call(self._delete, list(dict.fromkeys(run_ids)))

    async def count(self) -> int:
        return await self._call(self._count)

    # -- on the journal thread --------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"journal {self.path} is not open")
        return self._db

    def _open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # FULL, not NORMAL: a result acknowledged to nobody yet must survive a
        # power cut too; one fsync per finished run is cheap.
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute(_SCHEMA)
        self._db = db

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _put(self, run_id: str, finished_ms: int, data: bytes) -> None:
        self._conn().execute(
            "INSERT OR REPLACE INTO results (run_id, finished_ms, result) VALUES (?, ?, ?)",
            (run_id, finished_ms, data),
        )

    def _select(self, run_ids: list[str] | None) -> list[crontrio_pb2.RunFinished]:
        db = self._conn()
        rows: list[tuple[int, bytes]] = []
        if run_ids is None:
            rows = db.execute("SELECT finished_ms, result FROM results").fetchall()
        else:
            for i in range(0, len(run_ids), _IN_BATCH):
                batch = run_ids[i : i + _IN_BATCH]
                marks = ",".join("?" * len(batch))
                rows += db.execute(f"SELECT finished_ms, result FROM results WHERE run_id IN ({marks})", batch).fetchall()
        rows.sort(key=lambda row: row[0])
        return [crontrio_pb2.RunFinished.FromString(data) for _, data in rows]

    def _delete(self, run_ids: list[str]) -> int:
        db = self._conn()
        deleted = 0
        for i in range(0, len(run_ids), _IN_BATCH):
            batch = run_ids[i : i + _IN_BATCH]
            marks = ",".join("?" * len(batch))
            deleted += db.execute(f"DELETE FROM results WHERE run_id IN ({marks})", batch).rowcount
        return deleted

    def _count(self) -> int:
        (n,) = self._conn().execute("SELECT COUNT(*) FROM results").fetchone()
        return int(n)
