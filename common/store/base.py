"""The store interface: jobs, their change log, runs, the audit log, meta.

SqlStore (common/store/sql_store.py) is the one implementation, on SQLite or
MySQL/MariaDB. Its methods block; code on the event loop goes through
AsyncStore (common/store/async_store.py), which has every method below as
`async def` with the same signature.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from crontrio.common.model import AuditEntry, Job, RunRecord
from crontrio.common.store.run_stats import RunStats


class JobExistsError(Exception):
    """A job with that name already exists."""


class Store(Protocol):
    """What the services need of a database; blocking calls.

    Each method is documented on SqlStore, the implementation. A method added
    here is added to AsyncStore too (tests/unit/test_async_store.py checks).
    """

    def close(self) -> None: ...

    # Jobs (common/store/job_queries.py)

    def create_job(self, job: Job) -> Job: ...

    def update_job(self, job: Job) -> Job | None: ...

    def get_job(self, *, job_id: int = 0, name: str = "") -> Job | None: ...

    def list_jobs(
        self,
        *,
        name_prefix: str = "",
        after_id: int = 0,
        limit: int = 0,
        tag: str = "",
        owner: str = "",
        after_name: str | None = None,
    ) -> list[Job]: ...

    def jobs_by_ids(self, ids: Iterable[int]) -> list[Job]: ...

    def jobs_by_names(self, names: Iterable[str]) -> list[Job]: ...

    def delete_job(self, job_id: int) -> bool: ...

    def count_jobs(self) -> int: ...

    def set_enabled(self, job_id: int, enabled: bool) -> Job | None: ...

    # The job change log, which dispatchers and the monitor poll

    def revision(self) -> int: ...

    def changes_since(self, revision: int) -> tuple[int, set[int]]: ...

    def prune_changelog(self, older_than_ms: int) -> int: ...

    def oldest_change(self) -> int: ...

    # Runs (common/store/run_queries.py)

    def write_runs(self, inserts: Sequence[RunRecord], updates: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]: ...

    def finish_run_if_active(self, run_id: str, fields: dict[str, Any], dispatcher: str | None = None) -> bool: ...

    def mark_overrun(self, run_id: str, at_ms: int) -> bool: ...

    def unstarted_runs_between(self, start_ms: int, end_ms: int, not_dispatcher: str) -> list[RunRecord]: ...

    def adopt_runs(self, owned_by: Sequence[tuple[str, str]], new_dispatcher: str) -> set[str]: ...

    def firings_between(self, start_ms: int, end_ms: int) -> set[tuple[int, int]]: ...

    def active_runs_of(self, job_id: int) -> list[RunRecord]: ...

    def queued_runs_of(self, job_id: int) -> list[RunRecord]: ...

    def promote_queued(self, run_id: str) -> bool: ...

    def last_fired(self, job_ids: Sequence[int]) -> dict[int, int]: ...

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def list_runs(
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
    ) -> list[RunRecord]: ...

    def active_runs_not_of(self, dispatchers: Sequence[str], limit: int) -> list[RunRecord]: ...

    def running_started_before(self, before_ms: int, limit: int) -> list[RunRecord]: ...

    def count_runs_by_bucket(
        self, *, since_ms: int, until_ms: int, bucket_ms: int, job_name: str = ""
    ) -> dict[int, dict[str, int]]: ...

    def count_runs(self, *, since_ms: int, until_ms: int = 0, job_name: str = "") -> dict[str, int]: ...

    # Per-job run stats, the audit log, meta (common/store/sql_store.py)

    def job_run_stats(self, job_ids: Sequence[int]) -> dict[int, RunStats]: ...

    def add_audit(self, entry: AuditEntry) -> int: ...

    def list_audit(self, *, target: str = "", limit: int = 50, before_id: int = 0) -> list[AuditEntry]: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...
