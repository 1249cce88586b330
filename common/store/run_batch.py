"""Run rows written in batches: a multi-row INSERT per chunk of new runs, and
per set of updated columns one statement per chunk, telling exactly which
inserts created their row.

Why not one statement per row: at a burst of thousands of firings that was a
quarter of the dispatcher's CPU, and on MariaDB a network round trip per row
(PyMySQL sends an UPDATE executemany row by row). Measured per row, 500 rows
of 23 columns, 2 loaded cores, measured once with a one-off script:

| | SQLite | MariaDB (CPU / wall) |
|---|---|---|
| INSERT, a statement per row | 27 us | 97 / 447 us |
| INSERT, executemany | 15 us | 23 / 58 us |
| INSERT, multi-row VALUES (here) | 11 us | 14 / 64 us |
| UPDATE, executemany | **7 us** (SQLite, here) | 52 / 436 us |
| UPDATE ... CASE run_id ... WHERE run_id IN (...) | 11 us | **4.6 / 62 us** (MariaDB, here) |

SQLite has no round trips, and its executemany runs one prepared statement
in C: faster than a CASE, which it evaluates WHEN by WHEN for every row.

"Created or not" per insert, exactly, without a statement per row
----------------------------------------------------------------------
An insert that finds its firing attempt recorded already (by another
dispatcher, or by this one in an earlier batch: the run id is the firing
attempt's, job:scheduled:attempt:shard) must say so, since that is what stops
a second run of it. A multi-row INSERT ... ON CONFLICT DO NOTHING / INSERT
IGNORE only reports how many rows it inserted, so:

1. Fast path, nearly always: insert the batch; if every row was inserted,
   every insert created its row.
2. Otherwise, roll the whole transaction back (nothing of it is kept) and
   redo it looking first: SELECT which of the batch's run ids exist, insert
   the others, and check that every one of those was inserted. Then the ones
   that existed were not created by us, and the others were: exact.
3. If that check fails too, another dispatcher inserted one of the rows
   between our SELECT and our INSERT: roll back and look again, a few times,
   then fall back to a statement per row (whose rowcount is exact by itself).

Why the check in 2 is enough, with two dispatchers racing:
- SQLite has one writer at a time. Our INSERT statement is atomic; any row
  it did not insert existed when it ran. The SELECT before it is not in the
  same snapshot (pysqlite begins the transaction at the first write), and
  need not be: a row that appeared after the SELECT makes the count come up
  short, which sends us to step 3, never to a wrong answer.
- MariaDB (InnoDB, REPEATABLE READ): the SELECT is a consistent read from
  the transaction's snapshot, so it misses rows committed after it, and rows
  another transaction inserted but has not committed. Our INSERT IGNORE sees
  both: it waits on the other transaction's lock on that key, then ignores
  the row if it committed (inserts it if it rolled back). Either way the
  count is short exactly when a row we thought new was not inserted by us,
  and the retry starts a new transaction, hence a new snapshot that sees it.
  Rows are inserted in run id order, so two dispatchers inserting
  overlapping batches take the key locks in the same order and do not
  deadlock each other.
A run id listed twice in one batch is inserted once: the first insert
creates it, the second is refused, as if they had been two statements.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine

from crontrio.common.store.schema import runs

RUN_COLUMNS: tuple[str, ...] = tuple(c.name for c in runs.columns)
# Rows per statement: 500 x 23 columns stays under SQLite's bound-variable
# limit (32,766 since 3.32) and keeps a MariaDB packet far below its 16 MB.
CHUNK_ROWS = 500
# Rolled back and looked at again this often before a statement per row.
LOOK_AGAIN = 3


class _RacedError(Exception):
    """Rows of the batch appeared while it was being inserted: roll back."""


class RunBatchWriter:
    """The dialect's SQL for writing batches of run rows."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        dialect = engine.dialect
        self._sqlite = dialect.name == "sqlite"
        quote = dialect.identifier_preparer.quote
        self._mark = "?" if self._sqlite else "%s"
        self._columns = ", ".join(quote(c) for c in RUN_COLUMNS)
        self._row = "(" + ", ".join([self._mark] * len(RUN_COLUMNS)) + ")"
        self._chunk = CHUNK_ROWS
        if self._sqlite and sqlite3.sqlite_version_info < (3, 32):
            self._chunk = 999 // len(RUN_COLUMNS)  # the older limit of 999 variables
        self._executemany_updates: dict[tuple[str, ...], str] = {}

    def write(
        self, inserts: Sequence[dict[str, Any]], updates: dict[tuple[str, ...], list[tuple[str, dict[str, Any]]]], stamp: int
    ) -> list[bool]:
        """One transaction: `inserts` (full rows), then `updates` (per set of
        columns, (run id, values) once per run), every row's updated_ms set
        to `stamp`. Per insert, whether it created its row."""
        first: dict[str, dict[str, Any]] = {}
        for row in inserts:
            first.setdefault(row["run_id"], row)
        new = sorted(first.values(), key=lambda row: str(row["run_id"]))
        look = False  # the fast path first
        for _ in range(LOOK_AGAIN + 1):
            try:
                with self._engine.begin() as conn:
                    existing = self._insert(conn, new, look)
                    self._update(conn, updates, stamp)
                break
            except _RacedError:
                look = True
        else:
            with self._engine.begin() as conn:
                existing = self._insert_one_by_one(conn, new)
                self._update(conn, updates, stamp)
        created: list[bool] = []
        seen: set[str] = set()
        for row in inserts:
            run_id = row["run_id"]
            created.append(run_id not in existing and run_id not in seen)
            seen.add(run_id)
        return created

    # ------------------------------------------------------------ inserts

    def _insert(self, conn: Connection, rows: list[dict[str, Any]], look: bool) -> set[str]:
        """Insert `rows`; the run ids among them that existed before. Without
        `look`, inserts blindly and raises _RacedError unless every row was new;
        with it, SELECTs first and raises _RacedError if a row appeared meanwhile."""
        existing: set[str] = set()
        if look:
            for start in range(0, len(rows), self._chunk):
                existing |= self._existing(conn, [row["run_id"] for row in rows[start : start + self._chunk]])
            rows = [row for row in rows if row["run_id"] not in existing]
        inserted = 0
        for start in range(0, len(rows), self._chunk):
            inserted += self._insert_chunk(conn, rows[start : start + self._chunk])
        if inserted != len(rows):
            raise _RacedError
        return existing

    def _insert_chunk(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        values = ", ".join([self._row] * len(rows))
        if self._sqlite:
            sql = f"INSERT INTO runs ({self._columns}) VALUES {values} ON CONFLICT DO NOTHING"
        else:
            sql = f"INSERT IGNORE INTO runs ({self._columns}) VALUES {values}"
        params = tuple(row[c] for row in rows for c in RUN_COLUMNS)
        return int(conn.exec_driver_sql(sql, params).rowcount)

    def _existing(self, conn: Connection, run_ids: list[str]) -> set[str]:
        marks = ", ".join([self._mark] * len(run_ids))
        result = conn.exec_driver_sql(f"SELECT run_id FROM runs WHERE run_id IN ({marks})", tuple(run_ids))
        return {str(run_id) for (run_id,) in result}

    def _insert_one_by_one(self, conn: Connection, rows: list[dict[str, Any]]) -> set[str]:
        """The last resort: a statement per row, each rowcount exact by itself."""
        return {row["run_id"] for row in rows if self._insert_chunk(conn, [row]) == 0}

    # ------------------------------------------------------------ updates

    def _update(self, conn: Connection, updates: dict[tuple[str, ...], list[tuple[str, dict[str, Any]]]], stamp: int) -> None:
        for columns, changes in updates.items():
            if self._sqlite:
                # Driver-level executemany with tuples: the values are already
                # what the driver takes (the inserts pass them the same way),
                # and SQLAlchemy's per-row parameter building and bind
                # processing was a fifth of the dispatcher's CPU in a burst.
                rows = [(*(values[c] for c in columns), stamp, run_id) for run_id, values in changes]
                conn.exec_driver_sql(self._executemany_update(columns), rows)
                continue
            for start in range(0, len(changes), self._chunk):
                self._update_chunk(conn, columns, changes[start : start + self._chunk], stamp)

    def _update_chunk(
        self, conn: Connection, columns: tuple[str, ...], changes: list[tuple[str, dict[str, Any]]], stamp: int
    ) -> None:
        """UPDATE runs SET col = CASE run_id WHEN ... THEN ... END, ... WHERE
        run_id IN (...): one statement (one round trip) for the chunk.
        (MySQL assigns left to right, each seeing the columns set before it;
        harmless here, every CASE reads only run_id, which none sets.)"""
        quote = self._engine.dialect.identifier_preparer.quote
        whens = " ".join([f"WHEN {self._mark} THEN {self._mark}"] * len(changes))
        sets = [f"{quote(c)} = CASE run_id {whens} END" for c in columns]
        params: list[Any] = []
        for c in columns:
            for run_id, values in changes:
                params += (run_id, values[c])
        params.append(stamp)
        params += (run_id for run_id, _ in changes)
        marks = ", ".join([self._mark] * len(changes))
        sql = f"UPDATE runs SET {', '.join(sets)}, updated_ms = {self._mark} WHERE run_id IN ({marks})"
        conn.exec_driver_sql(sql, tuple(params))

    def _executemany_update(self, columns: tuple[str, ...]) -> str:
        """UPDATE runs SET the columns, updated_ms WHERE run_id, in that order of parameters."""
        sql = self._executemany_updates.get(columns)
        if sql is None:
            quote = self._engine.dialect.identifier_preparer.quote
            sets = ", ".join(f"{quote(c)} = {self._mark}" for c in (*columns, "updated_ms"))
            sql = self._executemany_updates[columns] = f"UPDATE runs SET {sets} WHERE run_id = {self._mark}"
        return sql
