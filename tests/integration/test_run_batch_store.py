"""Run rows written in batches (common/store/run_batch.py), on SQLite and on a
real MariaDB: whether each insert created its row stays exact when another
dispatcher records some of the same firings before or during the batch, and
updates of many runs with different sets of columns land exactly, across
statement chunks.

The "second dispatcher" is a second SqlStore on its own engine (its own
connections) writing the same database, at a chosen point of the first one's
transaction (an engine event just before one of its statements).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from sqlalchemy import event

from crontrio.common.model import RunRecord
from crontrio.common.store import run_batch
from crontrio.common.store.sql_store import SqlStore


def run(job_id: int, scheduled: int, dispatcher: str = "one", attempt: int = 1) -> RunRecord:
    return RunRecord(
        run_id=f"{job_id}-{scheduled}-{attempt}",
        job_id=job_id,
        job_name=f"j{job_id}",
        scheduled_ms=scheduled,
        attempt=attempt,
        status="pending",
        dispatcher=dispatcher,
    )


def before_statements(store: SqlStore, starting: str, action: Callable[[int], None]) -> list[str]:
    """Call action(n) just before the n-th statement of `store` starting with
    `starting` (n from 0); returns every statement's first words, in order."""
    seen: list[str] = []
    count = [0]

    def hook(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(" ".join(statement.split()[:3]))
        if statement.lstrip().upper().startswith(starting):
            n = count[0]
            count[0] += 1
            action(n)

    event.listen(store.engine, "before_cursor_execute", hook)
    return seen


def dispatcher_of(store: SqlStore, run_id: str) -> str:
    found = store.get_run(run_id)
    assert found is not None, run_id
    return found.dispatcher


def test_created_is_exact_when_another_dispatcher_recorded_some_before(store: SqlStore, other: SqlStore) -> None:
    batch = [run(j, 1000) for j in range(1, 1_201)]  # more than one statement's chunk
    theirs = {r.run_id for r in batch[::7]}
    assert other.write_runs([dataclasses.replace(r, dispatcher="two") for r in batch[::7]], []) == [True] * len(theirs)
    created = store.write_runs(batch, [])
    assert created == [r.run_id not in theirs for r in batch]
    for r in batch[:50]:
        assert dispatcher_of(store, r.run_id) == ("two" if r.run_id in theirs else "one")
    # Again: now every one of them exists.
    assert store.write_runs(batch[:600], []) == [False] * 600


def test_created_is_exact_when_another_dispatcher_records_some_during_the_batch(store: SqlStore, other: SqlStore) -> None:
    batch = [run(j, 2000) for j in range(1, 801)]
    theirs = {batch[5].run_id, batch[650].run_id, batch[799].run_id}

    def second_dispatcher(n: int) -> None:
        if n == 0:  # just before our first INSERT: inside our transaction, before our rows
            other.write_runs([dataclasses.replace(r, dispatcher="two") for r in batch if r.run_id in theirs], [])

    statements = before_statements(store, "INSERT", second_dispatcher)
    created = store.write_runs(batch, [("1-1-1", {"status": "running"})])
    assert created == [r.run_id not in theirs for r in batch]
    assert sum(created) == 797
    assert any(s.startswith("SELECT") for s in statements)  # the fast path failed and it looked
    for run_id in theirs:
        assert dispatcher_of(store, run_id) == "two"
    assert dispatcher_of(store, batch[6].run_id) == "one"


def test_rows_appearing_between_the_look_and_the_insert_are_not_claimed(store: SqlStore, other: SqlStore) -> None:
    """The second dispatcher inserts one more row after each of our SELECTs,
    more times than the writer looks again: it ends up inserting row by row,
    and still answers exactly."""
    batch = [run(j, 3000) for j in range(1, 40)]
    theirs: list[str] = [batch[0].run_id]
    other.write_runs([dataclasses.replace(batch[0], dispatcher="two")], [])  # so the fast path fails

    selects = [0]
    looked = [False]  # a SELECT of ours since our last INSERT

    def hook(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        words = statement.lstrip().upper()
        if words.startswith("SELECT RUN_ID"):
            selects[0] += 1
            looked[0] = True
        elif words.startswith("INSERT") and looked[0]:
            looked[0] = False  # our SELECT saw nothing of this row; our INSERT is next
            racer = batch[10 + selects[0]]
            theirs.append(racer.run_id)
            other.write_runs([dataclasses.replace(racer, dispatcher="two")], [])

    event.listen(store.engine, "before_cursor_execute", hook)
    created = store.write_runs(batch, [])
    assert selects[0] == run_batch.LOOK_AGAIN  # looked that often, then went row by row
    assert len(theirs) == 1 + run_batch.LOOK_AGAIN
    assert created == [r.run_id not in theirs for r in batch]
    for run_id in theirs:
        assert dispatcher_of(store, run_id) == "two"


def test_a_run_listed_twice_in_a_batch_is_created_once(store: SqlStore) -> None:
    batch = [run(1, 1000), run(2, 1000), run(1, 1000), run(3, 1000), run(2, 1000)]
    assert store.write_runs(batch, []) == [True, True, False, True, False]


def test_updates_of_many_runs_with_different_columns_land_exactly(store: SqlStore) -> None:
    batch = [run(j, 4000) for j in range(1, 1_301)]  # several chunks of each statement
    assert all(store.write_runs(batch, []))
    expected: dict[str, dict[str, Any]] = {r.run_id: {} for r in batch}
    updates: list[tuple[str, dict[str, Any]]] = []
    for i, r in enumerate(batch):
        kind = i % 4
        if kind == 0:
            fields: dict[str, Any] = {"status": "running", "executor": f"e{i % 3}", "started_ms": 5000 + i, "pid": i}
        elif kind == 1:
            fields = {
                "status": "failed",
                "finished_ms": 9000 + i,
                "exit_code": i % 250,
                "error": f'it\'s "broken" — run {i} ✗',
                "output": bytes(range(256)) * (i % 3),
                "output_truncated": i % 2 == 0,
            }
        elif kind == 2:
            fields = {"status": "running", "executor": "e9"}
        else:
            continue  # not updated at all
        updates.append((r.run_id, fields))
        expected[r.run_id].update(fields)
    # Later updates of a run win, per column: part of the running ones finish in the same batch.
    for r in batch[0:400:8]:
        updates.append((r.run_id, {"status": "succeeded", "finished_ms": 7}))
        expected[r.run_id].update({"status": "succeeded", "finished_ms": 7})
    assert store.write_runs([], updates) == []
    for r in batch:
        stored = store.get_run(r.run_id)
        assert stored is not None
        want = dataclasses.replace(r, **expected[r.run_id])
        for column, value in dataclasses.asdict(want).items():
            if column in ("created_ms", "updated_ms"):
                continue
            assert getattr(stored, column) == value, (r.run_id, column)
        if expected[r.run_id]:
            assert stored.updated_ms >= stored.created_ms


def test_a_huge_batch_of_inserts_and_updates_in_one_write(store: SqlStore, other: SqlStore) -> None:
    earlier = [run(j, 5000) for j in range(1, 2_001)]
    assert all(store.write_runs(earlier, []))
    batch = [run(j, 6000) for j in range(1, 5_001)]
    theirs = {r.run_id for r in batch[1_234::501]}
    other.write_runs([dataclasses.replace(r, dispatcher="two") for r in batch if r.run_id in theirs], [])
    updates = [(r.run_id, {"status": "succeeded", "finished_ms": 8000 + i}) for i, r in enumerate(earlier)]
    created = store.write_runs(batch, updates)
    assert created == [r.run_id not in theirs for r in batch]
    for i in (0, 499, 500, 1_999):
        stored = store.get_run(earlier[i].run_id)
        assert stored is not None and stored.status == "succeeded" and stored.finished_ms == 8000 + i
    assert len(store.list_runs(limit=10_000, with_output=False)) == 7_000
