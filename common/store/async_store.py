"""The store for code on the event loop: every Store method as `async def`.

AsyncStore owns a small thread pool and runs each blocking Store call on it,
so the event loop never waits on disk. Its methods are written out (not
forwarded by __getattr__) so that type checkers see each signature; the
unit test tests/unit/test_async_store.py keeps them in step with Store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from crontrio.common.model import AuditEntry, Job, RunRecord
from crontrio.common.store.base import Store
from crontrio.common.store.run_stats import RunStats

P = ParamSpec("P")
T = TypeVar("T")


class AsyncStore:
    """A Store whose calls run on worker threads of its own.

    A pool of its own, not asyncio's default one: a burst of slow queries
    must not starve other to_thread users, and its size caps DB concurrency.
    """

    def __init__(self, store: Store, workers: int = 4) -> None:
        # The blocking store, for code already on a worker thread.
        self.blocking = store
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="db")

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def run_blocking(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Other blocking database work on the same threads (schema upgrades,
        the user store, password hashing, retention steps), so the pool still
        caps how much runs at once."""
        return await self._run(fn, *args, **kwargs)

    async def close(self) -> None:
        """Wait for the calls under way, then close the store."""
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)
        self.blocking.close()

    async def create_job(self, job: Job) -> Job:
        return await self._run(self.blocking.create_job, job)

    async def update_job(self, job: Job) -> Job | None:
        return await self._run(self.blocking.update_job, job)

    async def get_job(self, *, job_id: int = 0, name: str = "") -> Job | None:
        return await self._run(self.blocking.get_job, job_id=job_id, name=name)

    async def list_jobs(
        self,
        *,
        name_prefix: str = "",
        after_id: int = 0,
        limit: int = 0,
        tag: str = "",
        owner: str = "",
        after_name: str | None = None,
    ) -> list[Job]:
        return await self._run(
            self.blocking.list_jobs,
            name_prefix=name_prefix,
            after_id=after_id,
            limit=limit,
            tag=tag,
            owner=owner,
            after_name=after_name,
        )

    async def jobs_by_ids(self, ids: Iterable[int]) -> list[Job]:
        return await self._run(self.blocking.jobs_by_ids, ids)

    async def jobs_by_names(self, names: Iterable[str]) -> list[Job]:
        return await self._run(self.blocking.jobs_by_names, names)

    async def delete_job(self, job_id: int) -> bool:
        return await self._run(self.blocking.delete_job, job_id)

    async def count_jobs(self) -> int:
        return await self._run(self.blocking.count_jobs)

    async def set_enabled(self, job_id: int, enabled: bool) -> Job | None:
        return await self._run(self.blocking.set_enabled, job_id, enabled)

    async def revision(self) -> int:
        return await self._run(self.blocking.revision)

    async def changes_since(self, revision: int) -> tuple[int, set[int]]:
        return await self._run(self.blocking.changes_since, revision)

    async def prune_changelog(self, older_than_ms: int) -> int:
        return await self._run(self.blocking.prune_changelog, older_than_ms)

    async def oldest_change(self) -> int:
        return await self._run(self.blocking.oldest_change)

    async def write_runs(self, inserts: Sequence[RunRecord], updates: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]:
        return await self._run(self.blocking.write_runs, inserts, updates)

    async def finish_run_if_active(self, run_id: str, fields: dict[str, Any], dispatcher: str | None = None) -> bool:
        return await self._run(self.blocking.finish_run_if_active, run_id, fields, dispatcher)

    async def mark_overrun(self, run_id: str, at_ms: int) -> bool:
        return await self._run(self.blocking.mark_overrun, run_id, at_ms)

    async def unstarted_runs_between(self, start_ms: int, end_ms: int, not_dispatcher: str) -> list[RunRecord]:
        return await self._run(self.blocking.unstarted_runs_between, start_ms, end_ms, not_dispatcher)

    async def adopt_runs(self, owned_by: Sequence[tuple[str, str]], new_dispatcher: str) -> set[str]:
        return await self._run(self.blocking.adopt_runs, owned_by, new_dispatcher)

    async def firings_between(self, start_ms: int, end_ms: int) -> set[tuple[int, int]]:
        return await self._run(self.blocking.firings_between, start_ms, end_ms)

    async def active_runs_of(self, job_id: int) -> list[RunRecord]:
        return await self._run(self.blocking.active_runs_of, job_id)

    async def queued_runs_of(self, job_id: int) -> list[RunRecord]:
        return await self._run(self.blocking.queued_runs_of, job_id)

    async def promote_queued(self, run_id: str) -> bool:
        return await self._run(self.blocking.promote_queued, run_id)

    async def last_fired(self, job_ids: Sequence[int]) -> dict[int, int]:
        return await self._run(self.blocking.last_fired, job_ids)

    async def active_runs_not_of(self, dispatchers: Sequence[str], limit: int) -> list[RunRecord]:
        return await self._run(self.blocking.active_runs_not_of, dispatchers, limit)

    async def running_started_before(self, before_ms: int, limit: int) -> list[RunRecord]:
        return await self._run(self.blocking.running_started_before, before_ms, limit)

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self._run(self.blocking.get_run, run_id)

    async def list_runs(
        self,
        *,
        job_id: int = 0,
        job_name: str = "",
        statuses: Sequence[str] = (),
        limit: int = 20,
        before_ms: int = 0,
        since_ms: int = 0,
        until_ms: int = 0,
        older_than: tuple[int, int, str] | None = None,
        with_output: bool = True,
    ) -> list[RunRecord]:
        return await self._run(
            self.blocking.list_runs,
            job_id=job_id,
            job_name=job_name,
            statuses=statuses,
            limit=limit,
            before_ms=before_ms,
            since_ms=since_ms,
            until_ms=until_ms,
            older_than=older_than,
            with_output=with_output,
        )

    async def count_runs_by_bucket(
        self, *, since_ms: int, until_ms: int, bucket_ms: int, job_name: str = ""
    ) -> dict[int, dict[str, int]]:
        return await self._run(
            self.blocking.count_runs_by_bucket, since_ms=since_ms, until_ms=until_ms, bucket_ms=bucket_ms, job_name=job_name
        )

    async def count_runs(self, *, since_ms: int, until_ms: int = 0, job_name: str = "") -> dict[str, int]:
        return await self._run(self.blocking.count_runs, since_ms=since_ms, until_ms=until_ms, job_name=job_name)

    async def job_run_stats(self, job_ids: Sequence[int]) -> dict[int, RunStats]:
        return await self._run(self.blocking.job_run_stats, job_ids)

    async def add_audit(self, entry: AuditEntry) -> int:
        return await self._run(self.blocking.add_audit, entry)

    async def list_audit(self, *, target: str = "", limit: int = 50, before_id: int = 0) -> list[AuditEntry]:
        return await self._run(self.blocking.list_audit, target=target, limit=limit, before_id=before_id)

    async def get_meta(self, key: str) -> str | None:
        return await self._run(self.blocking.get_meta, key)

    async def set_meta(self, key: str, value: str) -> None:
        return await self._run(self.blocking.set_meta, key, value)
