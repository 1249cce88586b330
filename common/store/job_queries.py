"""The job half of the SQL store: job definitions and their change log.

A mixin of SqlStore (common/store/sql_store.py), which gives it the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from crontrio.common.clock import now_ms
from crontrio.common.model import Job
from crontrio.common.store.base import JobExistsError
from crontrio.common.store.job_batches import rows_to_jobs
from crontrio.common.store.rows import job_values, lenient_text, row_to_job, text_defect
from crontrio.common.store.schema import job_changelog, jobs

# A job name search matching fewer jobs than this reads them by the name index
# and sorts them by id; one matching more walks the jobs by id (matches are
# then dense enough to fill a page soon).
FEW_NAMES = 2000


def _like_escape(text: str) -> str:
    """`text` matched literally by LIKE ... ESCAPE '\\'."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class JobQueries:
    """Jobs and the job change log."""

    engine: Engine
    _dialect: str

    def create_job(self, job: Job) -> Job:
        ts = now_ms()
        values = {**job_values(job), "created_ms": ts, "updated_ms": ts}
        try:
            with self.engine.begin() as conn:
                result = conn.execute(insert(jobs).values(**values))
                job_id = int(result.inserted_primary_key[0])  # type: ignore[index]
                row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().one()
        except IntegrityError as exc:
            raise JobExistsError(job.name) from exc
        return row_to_job(row)

    def update_job(self, job: Job) -> Job | None:
        """Replace a job's definition (by id); None when it no longer exists."""
        values = {**job_values(job), "updated_ms": now_ms()}
        try:
            with self.engine.begin() as conn:
                result = conn.execute(update(jobs).where(jobs.c.id == job.id).values(**values))
                if result.rowcount == 0:
                    return None
                row = conn.execute(select(jobs).where(jobs.c.id == job.id)).mappings().one()
        except IntegrityError as exc:
            raise JobExistsError(job.name) from exc
        return row_to_job(row)

    def get_job(self, *, job_id: int = 0, name: str = "") -> Job | None:
        query = select(jobs).where(jobs.c.id == job_id) if job_id else select(jobs).where(jobs.c.name == name)
        found = self._read_jobs(query)
        return found[0] if found else None

    def _read_jobs(self, query: Any) -> list[Job]:
        """The jobs a query selects, each row converted on its own.

        SQLite hands back whatever bytes a plain-SQL write stored, and its
        driver refuses the whole result when one text value is not UTF-8; the
        query is then read again decoding leniently, and the rows concerned
        are marked defective rather than hiding every job. (MariaDB refuses
        such text when it is written.)
        """
        try:
            return self._fetch_jobs(query, lenient=False)
        except OperationalError as exc:
            if self._dialect != "sqlite" or "decode" not in str(exc):
                raise
            return self._fetch_jobs(query, lenient=True)

    def _fetch_jobs(self, query: Any, *, lenient: bool) -> list[Job]:
        with self.engine.connect() as conn:
            driver = conn.connection.driver_connection
            if lenient:
                driver.text_factory = lenient_text  # type: ignore[union-attr]
            try:
                # Rows in batches, each turned into a Job at once: holding every
                # row and every Job together raised a dispatcher's peak memory by
                # tens of MB at start-up with 100,000 jobs.
                result = conn.execution_options(yield_per=1000).execute(query)
                if lenient:
                    return [text_defect(row_to_job(r), r) for r in result.mappings()]
                # Column by column (job_batches.py): a dispatcher's full load
                # converts every job here.
                keys = tuple(result.keys())
                out: list[Job] = []
                for batch in result.partitions():
                    out.extend(rows_to_jobs(keys, batch))
                return out
            finally:
                if lenient:
                    driver.text_factory = str  # type: ignore[union-attr]

    def list_jobs(
        self,
        *,
        name_prefix: str = "",
        after_id: int = 0,
        limit: int = 0,
        tag: str = "",
        owner: str = "",
        after_name: str | None = None,
    ) -> list[Job]:
        """Jobs by id; a page of them with after_id/limit, those named
        name_prefix* with a prefix, carrying `tag`, owned by `owner`. With
        `after_name` (even "") by name instead, those named after it (the
        unique name index gives the order, as the database collates)."""
        if after_name is None:
            query = select(jobs).where(jobs.c.id > after_id).order_by(jobs.c.id)
        else:
            query = select(jobs).where(jobs.c.name > after_name).order_by(jobs.c.name)
        if name_prefix:
            matches = jobs.c.name.like(_like_escape(name_prefix) + "%", escape="\\")
            query = query.where(matches)
            if self._few_match(matches):
                # Walk ix_jobs_name_nocase (0009) and sort the few found by id:
                # SQLite's planner, knowing nothing of how many names share a
                # prefix, otherwise walks every job by id to find none (+ 0
                # keeps it from ordering by walking the id).
                query = select(jobs).where(jobs.c.id > after_id, matches).order_by(jobs.c.id + 0)
        if tag:
            # Tags are slugs (no quotes), stored as a JSON list: '"tag"' is
            # in the text exactly when the tag is in the list.
            query = query.where(jobs.c.tags.like('%"' + _like_escape(tag) + '"%', escape="\\"))
        if owner:
            query = query.where(jobs.c.owner == owner)
        if limit:
            query = query.limit(limit)
        return self._read_jobs(query)

    def _few_match(self, matches: Any) -> bool:
        """SQLite only: do fewer than FEW_NAMES job names match? Counted on the
        name index alone, never more than FEW_NAMES entries. (MariaDB picks
        the name index by itself when it pays.)"""
        if self.engine.dialect.name != "sqlite":
            return False
        found = select(jobs.c.name).where(matches).limit(FEW_NAMES).subquery()
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(found)).scalar_one()) < FEW_NAMES

    def jobs_by_ids(self, ids: Iterable[int]) -> list[Job]:
        wanted = sorted(set(ids))
        out: list[Job] = []
        for start in range(0, len(wanted), 500):  # stay under bind-parameter limits
            chunk = wanted[start : start + 500]
            out.extend(self._read_jobs(select(jobs).where(jobs.c.id.in_(chunk))))
        return out

    def jobs_by_names(self, names: Iterable[str]) -> list[Job]:
        """The jobs with these names (unique index), by name; unknown names left out."""
        wanted = sorted(set(names))
        out: list[Job] = []
        for start in range(0, len(wanted), 500):  # stay under bind-parameter limits
            chunk = wanted[start : start + 500]
            out.extend(self._read_jobs(select(jobs).where(jobs.c.name.in_(chunk))))
        return sorted(out, key=lambda j: j.name)

    def delete_job(self, job_id: int) -> bool:
        """Delete the job; its runs stay as history."""
        with self.engine.begin() as conn:
            return conn.execute(delete(jobs).where(jobs.c.id == job_id)).rowcount > 0

    def count_jobs(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(jobs)).scalar_one())

    def set_enabled(self, job_id: int, enabled: bool) -> Job | None:
        with self.engine.begin() as conn:
            result = conn.execute(update(jobs).where(jobs.c.id == job_id).values(enabled=enabled, updated_ms=now_ms()))
            if result.rowcount == 0:
                return None
        # Read back on its own: a row with text that is not UTF-8 can still be paused.
        found = self._read_jobs(select(jobs).where(jobs.c.id == job_id))
        return found[0] if found else None

    # ------------------------------------------------------ change log

    def revision(self) -> int:
        """The newest job-change sequence number (0 when nothing changed yet)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(job_changelog.c.seq), 0))).scalar_one())

    def changes_since(self, revision: int) -> tuple[int, set[int]]:
        """Ids of jobs changed after `revision`, and the revision they bring us to."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(job_changelog.c.seq, job_changelog.c.job_id).where(job_changelog.c.seq > revision)).all()
        if not rows:
            return revision, set()
        return max(int(r.seq) for r in rows), {int(r.job_id) for r in rows}

    def prune_changelog(self, older_than_ms: int) -> int:
        """Forget changes older than that; dispatchers that far behind reload everything."""
        with self.engine.begin() as conn:
            newest = conn.execute(select(func.max(job_changelog.c.seq))).scalar()
            result = conn.execute(
                delete(job_changelog).where(job_changelog.c.changed_ms < older_than_ms, job_changelog.c.seq != newest)
            )
            return int(result.rowcount)

    def oldest_change(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.min(job_changelog.c.seq), 0))).scalar_one())
