"""The store on SQLAlchemy Core: one implementation for SQLite and MySQL/MariaDB.

SqlStore implements the Store interface (common/store/base.py) from three
parts: job definitions and their change log (job_queries.py), run history
(run_queries.py), and here the audit log and the meta table; rows.py turns
rows into model objects. Methods are blocking; async callers use AsyncStore
(common/store/async_store.py), which runs them on its worker threads so the
event loop never waits on disk.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, insert, select, update

from crontrio.common.model import AuditEntry
from crontrio.common.store import run_stats, schema
from crontrio.common.store.base import JobExistsError
from crontrio.common.store.job_queries import JobQueries
from crontrio.common.store.rows import row_to_job
from crontrio.common.store.run_batch import RunBatchWriter
from crontrio.common.store.run_queries import RunQueries
from crontrio.common.store.run_stats import RunStats
from crontrio.common.store.schema import audit_log, meta


class SqlStore(JobQueries, RunQueries):
    """Jobs, runs, the job change log and the audit log in one SQL database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name
        # Run rows written in batches (common/store/run_batch.py), built at first use.
        self._batch_writer: RunBatchWriter | None = None

    def close(self) -> None:
        self.engine.dispose()

    def job_run_stats(self, job_ids: Sequence[int]) -> dict[int, RunStats]:
        """How each job's recent runs went (see common/store/run_stats.py)."""
        return run_stats.job_run_stats(self.engine, job_ids)

    # ------------------------------------------------------------- audit

    def add_audit(self, entry: AuditEntry) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(audit_log).values(
                    at_ms=entry.at_ms,
                    actor=entry.actor,
                    action=entry.action,
                    target=entry.target,
                    before_json=entry.before,
                    after_json=entry.after,
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def list_audit(self, *, target: str = "", limit: int = 50, before_id: int = 0) -> list[AuditEntry]:
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if target:
            query = query.where(audit_log.c.target == target)
        if before_id:
            query = query.where(audit_log.c.id < before_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            AuditEntry(
                id=int(r["id"]),
                at_ms=int(r["at_ms"]),
                actor=r["actor"],
                action=r["action"],
                target=r["target"],
                before=r["before_json"],
                after=r["after_json"],
            )
            for r in rows
        ]

    # -------------------------------------------------------------- meta

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            if conn.execute(update(meta).where(meta.c.key == key).values(value=value)).rowcount == 0:
                conn.execute(insert(meta).values(key=key, value=value))


__all__ = ["JobExistsError", "SqlStore", "row_to_job", "schema"]
