"""Adopting a dead dispatcher's runs in batches (`SqlStore.adopt_runs`), on
SQLite and on a real MariaDB: the run ids it answers are exactly the runs it
moved, across statement chunks; runs that changed meanwhile (started, settled
by the monitor, adopted by another dispatcher) are left alone; a failure
moves none; and two dispatchers adopting the same runs at the same time
each win a part, every run exactly once.

The second dispatcher is a second SqlStore on its own engine (its own
connections), as in test_run_batch_store.py.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import event

from crontrio.common import status
from crontrio.common.model import RunRecord
from crontrio.common.store.run_batch import CHUNK_ROWS
from crontrio.common.store.sql_store import SqlStore

DEAD = "dead@1"


def pending(job_id: int, scheduled: int = 1000, dispatcher: str = DEAD) -> RunRecord:
    return RunRecord(
        run_id=f"{job_id}-{scheduled}-1",
        job_id=job_id,
        job_name=f"j{job_id}",
        scheduled_ms=scheduled,
        attempt=1,
        status=status.PENDING,
        dispatcher=dispatcher,
    )


def owners(store: SqlStore, run_ids: list[str]) -> dict[str, str]:
    found = {}
    for run_id in run_ids:
        run = store.get_run(run_id)
        assert run is not None, run_id
        found[run_id] = run.dispatcher
    return found


def test_it_moves_the_dead_dispatchers_runs_across_chunks_and_says_which(store: SqlStore) -> None:
    runs = [pending(j) for j in range(1, 2 * CHUNK_ROWS + 101)]
    assert all(store.write_runs(runs, []))
    ids = [r.run_id for r in runs]
    assert store.adopt_runs([(r.run_id, DEAD) for r in runs], "me@1") == set(ids)
    assert set(owners(store, ids).values()) == {"me@1"}
    # Again: they are not the dead one's any more.
    assert store.adopt_runs([(r.run_id, DEAD) for r in runs], "you@1") == set()
    assert set(owners(store, ids).values()) == {"me@1"}


def test_runs_that_changed_meanwhile_are_left_alone(store: SqlStore) -> None:
    runs = [pending(j) for j in range(1, 2 * CHUNK_ROWS + 1)]
    assert all(store.write_runs(runs, []))
    started = runs[3].run_id  # its executor reported the start
    settled = runs[CHUNK_ROWS + 7].run_id  # the monitor settled it as its dead dispatcher's
    elsewhere = runs[-1].run_id  # another dispatcher adopted it already
    store.write_runs([], [(started, {"status": status.RUNNING, "executor": "e1"})])
    assert store.finish_run_if_active(settled, {"status": status.LOST}, dispatcher=DEAD)
    assert store.adopt_runs([(elsewhere, DEAD)], "you@1") == {elsewhere}
    unknown = "999999-1000-1"  # no such row
    ids = [r.run_id for r in runs]
    won = store.adopt_runs([(run_id, DEAD) for run_id in [*ids, unknown]], "me@1")
    assert won == set(ids) - {started, settled, elsewhere}
    found = owners(store, ids)
    assert (found[started], found[settled], found[elsewhere]) == (DEAD, DEAD, "you@1")
    assert {found[run_id] for run_id in won} == {"me@1"}


def test_each_run_is_checked_against_its_own_dead_dispatcher(store: SqlStore) -> None:
    mine = pending(1, dispatcher="dead@1")
    theirs = pending(2, dispatcher="dead@2")
    assert all(store.write_runs([mine, theirs], []))
    # The second is listed with the wrong owner (it is dead@2's, not dead@1's): left alone.
    assert store.adopt_runs([(mine.run_id, "dead@1"), (theirs.run_id, "dead@1")], "me@1") == {mine.run_id}
    assert store.adopt_runs([(theirs.run_id, "dead@2")], "me@1") == {theirs.run_id}


def test_runs_another_dispatcher_adopts_just_before_are_not_answered_as_won(store: SqlStore, other: SqlStore) -> None:
    """The other adopter commits its part of the same runs just before our
    first UPDATE (inside our transaction): we move fewer rows than asked and
    must tell exactly which, by reading back."""
    runs = [pending(j) for j in range(1, CHUNK_ROWS + 301)]
    assert all(store.write_runs(runs, []))
    ids = [r.run_id for r in runs]
    theirs = set(ids[::3])
    updates = [0]

    def hook(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            if updates[0] == 0:
                assert other.adopt_runs([(run_id, DEAD) for run_id in sorted(theirs)], "you@1") == theirs
            updates[0] += 1

    event.listen(store.engine, "before_cursor_execute", hook)
    won = store.adopt_runs([(run_id, DEAD) for run_id in ids], "me@1")
    event.remove(store.engine, "before_cursor_execute", hook)
    assert updates[0] == 2  # two chunks
    assert won == set(ids) - theirs
    found = owners(store, ids)
    assert all(found[run_id] == ("you@1" if run_id in theirs else "me@1") for run_id in ids)


def test_a_failure_moves_none_of_them(store: SqlStore) -> None:
    runs = [pending(j) for j in range(1, CHUNK_ROWS + 11)]
    assert all(store.write_runs(runs, []))
    ids = [r.run_id for r in runs]
    updates = [0]

    def hook(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            updates[0] += 1
            if updates[0] == 2:  # after the first chunk moved
                raise RuntimeError("the database went away")

    event.listen(store.engine, "before_cursor_execute", hook)
    with pytest.raises(RuntimeError):
        store.adopt_runs([(run_id, DEAD) for run_id in ids], "me@1")
    event.remove(store.engine, "before_cursor_execute", hook)
    assert set(owners(store, ids).values()) == {DEAD}  # nobody's but the dead one's: ask again later
    assert store.adopt_runs([(run_id, DEAD) for run_id in ids], "me@1") == set(ids)


def test_two_dispatchers_adopting_the_same_runs_at_once_win_each_run_exactly_once(store: SqlStore, other: SqlStore) -> None:
    runs = [pending(j) for j in range(1, 3 * CHUNK_ROWS + 1)]
    assert all(store.write_runs(runs, []))
    ids = [r.run_id for r in runs]
    # Overlapping, not identical: each also asks for some only it wants,
    # in its own order (one from the end).
    asks = {"me@1": ids[: 2 * CHUNK_ROWS + 100], "you@1": list(reversed(ids[CHUNK_ROWS - 100 :]))}
    stores = {"me@1": store, "you@1": other}
    won: dict[str, set[str]] = {}
    errors: list[BaseException] = []
    go = threading.Barrier(2)

    def adopter(me: str) -> None:
        try:
            go.wait(timeout=30)
            # In a few batches, as a watch adopts what each of its looks finds.
            mine: set[str] = set()
            wanted = asks[me]
            for start in range(0, len(wanted), 250):
                batch = wanted[start : start + 250]
                mine |= stores[me].adopt_runs([(run_id, DEAD) for run_id in batch], me)
            won[me] = mine
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=adopter, args=(me,)) for me in asks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert not won["me@1"] & won["you@1"]  # no run adopted twice
    assert won["me@1"] | won["you@1"] == set(ids)  # every run adopted
    found = owners(store, ids)
    for me, mine in won.items():
        assert all(found[run_id] == me for run_id in mine), me
    # Only the shared ones could go either way.
    assert set(ids[: CHUNK_ROWS - 100]) <= won["me@1"] and set(ids[2 * CHUNK_ROWS + 100 :]) <= won["you@1"]


def test_a_run_listed_twice_is_adopted_once(store: SqlStore) -> None:
    run = pending(1)
    assert store.write_runs([run], []) == [True]
    assert store.adopt_runs([(run.run_id, DEAD), (run.run_id, DEAD)], "me@1") == {run.run_id}
    assert owners(store, [run.run_id]) == {run.run_id: "me@1"}
