"""The local run journal: every run from just before it starts until a
dispatcher has acknowledged its result.

A dispatcher that dies mid-run must lose nothing (DESIGN, "The life of a
firing", step 8), so every RunFinished is written here before it is sent, and
only dropped on Ack. An executor that dies mid-run must not run the task a
second time when a dispatcher reattaches with the same run_id, so the start
of every run is written here too, before its process is spawned or its
request sent. It is one small SQLite file per executor host; its contents
outlive executor restarts.

A run id is in exactly one table at a time, moved by single transactions:

* ``started``  — the run is going (or died with the executor process that
  ran it: on the next start those become ``lost`` results);
* ``results``  — finished, the RunFinished kept until acknowledged;
* ``acked``    — acknowledged, remembered for ``ACKED_MEMORY_MS`` so that a
  delayed duplicate Run is refused instead of running the job again.

(A little over 500 lines on purpose: each write's one-at-a-time form and the
batched form a group commit uses sit side by side, so that each batch form
can be read against the form whose outcome it must equal.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from crontrio.executor.journal_health import JournalHealth
from crontrio.executor.workers import Workers
from crontrio.protos import crontrio_pb2

log = logging.getLogger(__name__)

T = TypeVar("T")

# SQLite's limit on bound variables is far higher in modern builds, but
# small batches keep every statement cheap and portable.
_IN_BATCH = 500

# How long an acknowledged run id is remembered (a Run for it is refused).
ACKED_MEMORY_MS = 24 * 3600 * 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    run_id      TEXT PRIMARY KEY,
    finished_ms INTEGER NOT NULL,
    result      BLOB NOT NULL       -- a serialized crontrio.v1.RunFinished
);
-- Runs going right now, or that died with the executor process running them.
-- Only what a `lost` result and the log need: not the command, environment
-- or headers, which may hold secrets.
CREATE TABLE IF NOT EXISTS started (
    run_id       TEXT PRIMARY KEY,
    started_ms   INTEGER NOT NULL,
    pid          INTEGER NOT NULL DEFAULT 0,  -- the shell's pid (= pgid) once spawned; 0 before and for HTTP
    host         TEXT NOT NULL,
    executor     TEXT NOT NULL,               -- advertised address of the process running it
    task         TEXT NOT NULL,               -- shell or http
    job_id       INTEGER NOT NULL,
    job_name     TEXT NOT NULL,
    scheduled_ms INTEGER NOT NULL,
    attempt      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS acked (
    run_id   TEXT PRIMARY KEY,
    acked_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS acked_by_time ON acked (acked_ms);
-- ListResults pages through results in this order (added later: IF NOT EXISTS
-- also creates it in an older journal).
CREATE INDEX IF NOT EXISTS results_by_finish ON results (finished_ms, run_id);
"""

# The columns of `started` in StartedRun's field order.
_STARTED_FIELDS = "run_id, started_ms, host, executor, task, job_id, job_name, scheduled_ms, attempt, pid"


_INSERT_STARTED = (
    "INSERT OR REPLACE INTO started"
    " (run_id, started_ms, pid, host, executor, task, job_id, job_name, scheduled_ms, attempt)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_RESULT = "INSERT OR REPLACE INTO results (run_id, finished_ms, result) VALUES (?, ?, ?)"
_DELETE_STARTED = "DELETE FROM started WHERE run_id = ?"


@dataclass(frozen=True)
class StartedRun:
    """The journal's record of a run that started and has not finished."""

    run_id: str
    started_ms: int
    host: str
    executor: str
    task: str
    job_id: int
    job_name: str
    scheduled_ms: int
    attempt: int
    pid: int = 0


@dataclass(frozen=True)
class Lookup:
    """What the journal knows about one run id that is not running."""

    result: crontrio_pb2.RunFinished | None = None  # finished, not yet acknowledged
    acked_ms: int = 0  # > 0: finished and acknowledged at this time
    started: StartedRun | None = None  # journaled as started, never finished


@dataclass(frozen=True, order=True)
class ResultKey:
    """Where a result sits in ListResults order, and its size in bytes."""

    finished_ms: int
    run_id: str
    size: int = field(default=0, compare=False)


class Journal:
    """Runs and their unacknowledged RunFinished results in a SQLite file.

    All SQLite work happens on one dedicated thread: the event loop never
    blocks on disk, and one connection used by one thread needs no locking.
    Calls run in the order they were made.

    Group commit: calls made while a transaction is being written wait and go
    together into the next one, so N runs starting at once cost one fsync,
    not N (at 1,000 runs a second, one fsync per write would be the limit).
    Nothing waits on a timer: a lone call is written at once. When the
    shared transaction fails (a full disk fails at COMMIT), each call is
    retried alone and gets its own outcome: success only if committed.
    Failures are logged with their cause at most once a minute (``health``).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread = Workers(1, "journal")
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions written (for tests and diagnostics)
        self.health = JournalHealth(path)
        # The calls that have a batched form, used by _apply for a run of them.
        self._batched: dict[Callable[..., Any], Callable[[list[Any]], list[Any]]] = {
            self._begin_if_new: self._begin_if_new_many,
            self._put: self._put_many,
        }

    async def open(self) -> None:
        await self._call(self._open)
        log.info(
            "journal %s open, %d unacknowledged result(s), %d unfinished run(s)",
            self.path,
            await self.count(),
            len(await self.unfinished()),
        )

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.shield(self._writer)
        await self._call(self._close)
        self._thread.shutdown()

    async def begin(self, run: StartedRun) -> None:
        """Record that a run is starting; durable when this returns."""
        await self._submit(self._begin, run)

    async def begin_if_new(self, run: StartedRun) -> Lookup | None:
        """Begin ``run`` unless its id is known here: None when it was
        unknown and is now recorded as started (durable when this returns),
        else what the journal knows of it, left unchanged. One call and one
        transaction for a lookup and a begin, so a starting run costs one
        trip through the writer, and nothing can come between the two."""
        return await self._submit(self._begin_if_new, run)

    async def restate(self, run: StartedRun) -> None:
        """Rewrite what the start record of a run not yet finished says of
        its task (a held run whose request was replaced); nothing for a run
        whose start record is gone (finished meanwhile)."""
        await self._submit(self._restate, run)

    async def set_pid(self, run_id: str, pid: int) -> None:
        """Record the process id of a started run."""
        await self._submit(self._set_pid, run_id, pid)

    async def unfinished(self) -> list[StartedRun]:
        """Runs recorded as started and not finished, oldest first."""
        return await self._submit(self._unfinished)

    async def put(self, result: crontrio_pb2.RunFinished) -> None:
        """Store (or replace) one result, replacing the run's started record;
        durable when this returns."""
        data = result.SerializeToString()
        await self._submit(self._put, result.run_id, result.finished_ms, data)

    async def get(self, run_id: str) -> crontrio_pb2.RunFinished | None:
        rows = await self._submit(self._select, [run_id])
        return rows[0] if rows else None

    async def lookup(self, run_id: str) -> Lookup:
        return await self._submit(self._lookup, run_id)

    async def results(self, run_ids: Sequence[str] = ()) -> list[crontrio_pb2.RunFinished]:
        """All stored results, or only those of ``run_ids``, oldest first."""
        return await self._submit(self._select, list(run_ids) or None)

    async def result_keys(self, run_ids: Sequence[str], after: ResultKey | None, limit: int) -> list[ResultKey]:
        """Keys of the stored results (all, or of ``run_ids``) after ``after``
        in (finished_ms, run_id) order, at most ``limit`` of them: what a page
        of ListResults picks from without reading the results themselves."""
        return await self._submit(self._result_keys, list(run_ids) or None, after, limit)

    async def ack(self, run_ids: Iterable[str], acked_ms: int) -> int:
        """Drop these results, remembering their run ids as acknowledged;
        returns how many were stored. Forgets acknowledgements older than
        ``ACKED_MEMORY_MS``."""
        return await self._submit(self._ack, list(dict.fromkeys(run_ids)), acked_ms)

    async def ack_unfinished(self, run_ids: Iterable[str], acked_ms: int) -> None:
        """Remember these runs, journaled as started, as acknowledged: their
        result was delivered and acknowledged without having been journaled
        (the journal could not be written then)."""
        await self._submit(self._ack_unfinished, list(dict.fromkeys(run_ids)), acked_ms)

    async def count(self) -> int:
        return await self._submit(self._count)

    async def drop_unacked_older_than(self, cutoff_ms: int) -> list[str]:
        """Drop the results that finished before ``cutoff_ms`` and were never
        acknowledged; returns their run ids, oldest first, for the caller to
        report (executor/journal_retention.py)."""
        return await self._submit(self._drop_unacked_older_than, cutoff_ms)

    # -- on the journal thread --------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        return await self._thread.run(functools.partial(fn, *args))

    async def _submit(self, fn: Callable[..., T], *args: Any) -> T:
        """Queue one call for the next transaction and wait for its result."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, args, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="journal-writer")
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                outcomes = await self._call(self._run_batch, [(fn, args) for fn, args, _ in batch])
            except Exception as exc:  # noqa: BLE001 - e.g. the thread is gone: fail the batch, not the writer
                outcomes = [(False, exc)] * len(batch)
            for (_, _, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _run_batch(self, calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[tuple[bool, Any]]:
        """All calls in one transaction; if it fails, each call in its own,
        so one bad write fails alone instead of taking its batch with it.
        Exactly one outcome per call, in order, and (True, ...) only for a
        call whose transaction was committed: a caller told its write
        succeeded may rely on it being on disk."""
        self.batches += 1
        try:
            with self._transaction():
                values = self._apply(calls)
        except Exception as exc:  # noqa: BLE001 - isolate the failing call below
            if len(calls) == 1:
                return [(False, exc)]
        else:
            return [(True, value) for value in values]
        outcomes: list[tuple[bool, Any]] = []
        for fn, args in calls:
            try:
                with self._transaction():
                    value = fn(*args)
            except Exception as exc:  # noqa: BLE001 - handed to that call's caller
                outcomes.append((False, exc))
            else:
                outcomes.append((True, value))
        return outcomes

    def _apply(self, calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Any]:
        """Every call of a batch, in order, inside its transaction: a run of
        consecutive calls of a kind that has a batched form (the starts and
        results of a burst) is done by that form, one executemany per
        statement for the lot, rather than a call and a statement per run."""
        values: list[Any] = []
        i = 0
        while i < len(calls):
            fn = calls[i][0]
            j = i + 1
            while j < len(calls) and calls[j][0] == fn:
                j += 1
            many = self._batched.get(fn) if j - i > 1 else None
            if many is not None:
                values += many([args for _, args in calls[i:j]])
            else:
                values += [f(*args) for f, args in calls[i:j]]
            i = j
        return values

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"journal {self.path} is not open")
        return self._db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction; it raises unless it was committed. A failed
        COMMIT (a full disk fails there, when the WAL is written) is rolled
        back if SQLite has not done so itself, so the next one starts clean."""
        db = self._conn()
        changes = db.total_changes
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if isinstance(exc, Exception):
                self.health.failed(exc)
            raise
        if db.total_changes != changes:
            self.health.succeeded()

    def _open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # FULL, not NORMAL: a result acknowledged to nobody yet, or the start
        # of a run, must survive a power cut too; one fsync per write is cheap.
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        self._db = db

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _begin(self, run: StartedRun) -> None:
        self._conn().execute(_INSERT_STARTED, _started_row(run))

    def _begin_if_new(self, run: StartedRun) -> Lookup | None:
        known = self._lookup(run.run_id)
        if known.result is not None or known.acked_ms or known.started is not None:
            return known
        self._begin(run)
        return None

    def _restate(self, run: StartedRun) -> None:
        self._conn().execute("UPDATE started SET task = ?, job_name = ? WHERE run_id = ?", (run.task, run.job_name, run.run_id))

    def _begin_if_new_many(self, calls: list[tuple[StartedRun]]) -> list[Lookup | None]:
        """``_begin_if_new`` for a batch of runs: what the journal knows of
        them in one SELECT per table, then one executemany for the new ones.
        The same outcome per run as one call each, in order (a run id twice
        in the batch: the second finds the first's start record)."""
        runs = [run for (run,) in calls]
        ids = list(dict.fromkeys(run.run_id for run in runs))
        results: dict[str, crontrio_pb2.RunFinished] = {}
        acked: dict[str, int] = {}
        started: dict[str, StartedRun] = {}
        db = self._conn()
        for i in range(0, len(ids), _IN_BATCH):
            batch = ids[i : i + _IN_BATCH]
            marks = ",".join("?" * len(batch))
            for run_id, data in db.execute(f"SELECT run_id, result FROM results WHERE run_id IN ({marks})", batch):
                results[run_id] = crontrio_pb2.RunFinished.FromString(data)
            for run_id, acked_ms in db.execute(f"SELECT run_id, acked_ms FROM acked WHERE run_id IN ({marks})", batch):
                acked[run_id] = int(acked_ms)
            for row in db.execute(f"SELECT {_STARTED_FIELDS} FROM started WHERE run_id IN ({marks})", batch):
                started[row[0]] = StartedRun(*row)
        outcomes: list[Lookup | None] = []
        new: list[StartedRun] = []
        for run in runs:
            if run.run_id in results:
                outcomes.append(Lookup(result=results[run.run_id]))
            elif run.run_id in acked:
                outcomes.append(Lookup(acked_ms=acked[run.run_id]))
            elif run.run_id in started:
                outcomes.append(Lookup(started=started[run.run_id]))
            else:
                outcomes.append(None)
                new.append(run)
                started[run.run_id] = run
        db.executemany(_INSERT_STARTED, [_started_row(run) for run in new])
        return outcomes

    def _put_many(self, calls: list[tuple[str, int, bytes]]) -> list[None]:
        """``_put`` for a batch of results: one executemany per statement."""
        db = self._conn()
        db.executemany(_INSERT_RESULT, calls)
        db.executemany(_DELETE_STARTED, [(run_id,) for run_id, _, _ in calls])
        return [None] * len(calls)

    def _set_pid(self, run_id: str, pid: int) -> None:
        self._conn().execute("UPDATE started SET pid = ? WHERE run_id = ?", (pid, run_id))

    def _unfinished(self) -> list[StartedRun]:
        rows = self._conn().execute(f"SELECT {_STARTED_FIELDS} FROM started ORDER BY started_ms")
        return [StartedRun(*row) for row in rows.fetchall()]

    def _put(self, run_id: str, finished_ms: int, data: bytes) -> None:
        db = self._conn()
        db.execute(_INSERT_RESULT, (run_id, finished_ms, data))
        db.execute(_DELETE_STARTED, (run_id,))

    def _lookup(self, run_id: str) -> Lookup:
        db = self._conn()
        row = db.execute("SELECT result FROM results WHERE run_id = ?", (run_id,)).fetchone()
        if row is not None:
            return Lookup(result=crontrio_pb2.RunFinished.FromString(row[0]))
        row = db.execute("SELECT acked_ms FROM acked WHERE run_id = ?", (run_id,)).fetchone()
        if row is not None:
            return Lookup(acked_ms=int(row[0]))
        row = db.execute(
            f"SELECT {_STARTED_FIELDS} FROM started WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        return Lookup(started=StartedRun(*row) if row is not None else None)

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

    def _result_keys(self, run_ids: list[str] | None, after: ResultKey | None, limit: int) -> list[ResultKey]:
        db = self._conn()
        where, params = "", []
        if after is not None:
            # A row value: SQLite (3.15+) seeks the index to it.
            where = " AND (finished_ms, run_id) > (?, ?)"
            params = [after.finished_ms, after.run_id]
        # length() of a BLOB comes from the record header: the results
        # themselves are not read here.
        select = "SELECT finished_ms, run_id, length(result) FROM results WHERE 1"
        order = " ORDER BY finished_ms, run_id LIMIT ?"
        if run_ids is None:
            rows = db.execute(select + where + order, [*params, limit]).fetchall()
        else:
            rows = []
            for i in range(0, len(run_ids), _IN_BATCH):
                batch = run_ids[i : i + _IN_BATCH]
                marks = ",".join("?" * len(batch))
                rows += db.execute(f"{select} AND run_id IN ({marks}){where}{order}", [*batch, *params, limit]).fetchall()
        keys = sorted(ResultKey(int(ms), run_id, int(size)) for ms, run_id, size in rows)
        return keys[:limit]

    def _ack_unfinished(self, run_ids: list[str], acked_ms: int) -> None:
        db = self._conn()
        for i in range(0, len(run_ids), _IN_BATCH):
            batch = run_ids[i : i + _IN_BATCH]
            marks = ",".join("?" * len(batch))
            db.execute(
                f"INSERT OR REPLACE INTO acked (run_id, acked_ms) SELECT run_id, ? FROM started WHERE run_id IN ({marks})",
                [acked_ms, *batch],
            )
            db.execute(f"DELETE FROM started WHERE run_id IN ({marks})", batch)

    def _ack(self, run_ids: list[str], acked_ms: int) -> int:
        deleted = 0
        db = self._conn()  # inside the batch's transaction
        for i in range(0, len(run_ids), _IN_BATCH):
            batch = run_ids[i : i + _IN_BATCH]
            marks = ",".join("?" * len(batch))
            # Only ids that had a result here: acking an unknown id must
            # not block a later run of it.
            db.execute(
                f"INSERT OR REPLACE INTO acked (run_id, acked_ms) SELECT run_id, ? FROM results WHERE run_id IN ({marks})",
                [acked_ms, *batch],
            )
            deleted += db.execute(f"DELETE FROM results WHERE run_id IN ({marks})", batch).rowcount
        db.execute("DELETE FROM acked WHERE acked_ms < ?", (acked_ms - ACKED_MEMORY_MS,))
        return deleted

    def _count(self) -> int:
        (n,) = self._conn().execute("SELECT COUNT(*) FROM results").fetchone()
        return int(n)

    def _drop_unacked_older_than(self, cutoff_ms: int) -> list[str]:
        db = self._conn()  # inside the batch's transaction: what is listed is what goes
        rows = db.execute("SELECT run_id FROM results WHERE finished_ms < ? ORDER BY finished_ms", (cutoff_ms,)).fetchall()
        db.execute("DELETE FROM results WHERE finished_ms < ?", (cutoff_ms,))
        return [str(row[0]) for row in rows]


def _started_row(run: StartedRun) -> tuple[object, ...]:
    """``run`` as the values of _INSERT_STARTED."""
    return (
        run.run_id,
        run.started_ms,
        run.pid,
        run.host,
        run.executor,
        run.task,
        run.job_id,
        run.job_name,
        run.scheduled_ms,
        run.attempt,
    )
