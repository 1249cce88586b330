"""Two surviving dispatchers adopt a dead peer's recorded, unsent firings
(dispatcher/takeover.py) on SQLite and on a real MariaDB: both watch the same
burst, both find the peer dead, and every run is carried on by exactly one
of them, handed over in a few batches rather than one call per run. Runs of
a live peer are left alone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.common.config import DatabaseConfig
from crontrio.common.model import Job, RunRecord, make_run_id
from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.engine import make_engine
from crontrio.common.store.sql_store import SqlStore
from crontrio.dispatcher.takeover import TakeoverWatch
from testing_support.services import wait_until

DEAD, LIVE = "dead@1", "live@1"


class Survivor:
    """A dispatcher's TakeoverWatch with what it adopts written down."""

    def __init__(self, store: AsyncStore, me: str) -> None:
        self.batches: list[list[tuple[Job, RunRecord]]] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.watch = TakeoverWatch(store, self._never, self._spawn, dispatcher_id=me, alive=self._alive, adopt=self._adopt)

    async def _never(self, job: Job, scheduled_ms: int) -> None:
        raise AssertionError(f"{job.name} at {scheduled_ms} was recorded: nothing to take over")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _alive(self, dispatcher: str) -> bool:
        return dispatcher != DEAD

    async def _adopt(self, adopted: list[tuple[Job, RunRecord]]) -> None:
        self.batches.append(adopted)

    def run_ids(self) -> set[str]:
        return {run.run_id for batch in self.batches for _, run in batch}


async def test_two_survivors_adopt_each_of_a_dead_peers_runs_exactly_once(store: SqlStore, store_config: DatabaseConfig) -> None:
    scheduled = now_ms() - 1000  # due already: looked at as soon as found recorded
    jobs = [Job(name=f"j{i}", spec="* * * * *", command="true", id=i) for i in range(1, 1_201)]
    owner = {job.id: (LIVE if job.id % 10 == 0 else DEAD) for job in jobs}
    runs = [
        RunRecord(
            run_id=make_run_id(job.id, scheduled, 1),
            job_id=job.id,
            job_name=job.name,
            scheduled_ms=scheduled,
            attempt=1,
            status=status.PENDING,
            dispatcher=owner[job.id],
        )
        for job in jobs
    ]
    assert all(store.write_runs(runs, []))
    dead_runs = {r.run_id for r in runs if r.dispatcher == DEAD}
    second = SqlStore(make_engine(store_config))
    stores = [AsyncStore(store), AsyncStore(second)]
    survivors = [Survivor(stores[0], "me@1"), Survivor(stores[1], "you@1")]
    loops = [asyncio.create_task(s.watch.run()) for s in survivors]
    try:
        for job in jobs:  # both lost every claim of the burst
            for s in survivors:
                s.watch.watch(job, scheduled)
        await wait_until(lambda: sum(len(s.run_ids()) for s in survivors) >= len(dead_runs), 30, "every dead run adopted")
    finally:
        for t in loops:
            t.cancel()
        for t in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await stores[1].close()
    mine, yours = (s.run_ids() for s in survivors)
    assert not mine & yours  # no run carried on twice
    assert mine | yours == dead_runs  # every dead peer's run carried on; the live one's left alone
    assert sum(s.watch.adopted for s in survivors) == len(dead_runs)
    for s, me in zip(survivors, ("me@1", "you@1"), strict=True):
        for batch in s.batches:
            for job, run in batch:
                assert job.id == run.job_id and run.dispatcher == DEAD
                stored = store.get_run(run.run_id)
                assert stored is not None and stored.dispatcher == me
        # A batch per look (the looks due together), not a call per run.
        assert len(s.batches) <= 10, [len(b) for b in s.batches]
