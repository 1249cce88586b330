"""The store on SQLAlchemy Core: one implementation for SQLite and MySQL/MariaDB.

Methods are blocking; async callers go through common.store.async_store,
which runs them on worker threads so the event loop never waits on disk.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError

from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.common.model import ON_SUCCESS, TIMEOUT_KILL, AuditEntry, Dependency, Job, RunRecord
from crontrio.common.store import schema
from crontrio.common.store.schema import audit_log, job_changelog, jobs, meta, runs


class JobExistsError(Exception):
    """A job with that name already exists."""


# A job name search matching fewer jobs than this reads them by the name index
# and sorts them by id; one matching more walks the jobs by id (matches are
# then dense enough to fill a page soon).
FEW_NAMES = 2000


def _job_values(job: Job) -> dict[str, Any]:
    return {
        "name": job.name,
        "spec": job.spec,
        "timezone": job.timezone,
        "type": job.type,
        "command": job.command,
        "http_method": job.http_method,
        "http_headers": json.dumps(job.http_headers, sort_keys=True),
        "http_body": job.http_body,
        "expected_statuses": ",".join(str(s) for s in job.expected_statuses),
        "timeout_seconds": job.timeout_seconds,
        "timeout_action": job.timeout_action,
        "retries": job.retries,
        "retry_interval_seconds": job.retry_interval_seconds,
        "enabled": job.enabled,
        "target": job.target,
        "workdir": job.workdir,
        "env": json.dumps(job.env, sort_keys=True),
        "overlap_policy": job.overlap_policy,
        "misfire_policy": job.misfire_policy,
        "catch_up_window_seconds": job.catch_up_window_seconds,
        "retry_backoff": job.retry_backoff,
        "retry_max_interval_seconds": job.retry_max_interval_seconds,
        "retry_jitter": job.retry_jitter,
        "route_strategy": job.route_strategy,
        "run_as_user": job.run_as_user,
        "follow_redirects": job.follow_redirects,
        "skip_tls_verify": job.skip_tls_verify,
        "keywords": json.dumps(list(job.keywords)),
        "keyword_action": job.keyword_action,
        "after_jobs": json.dumps([{"job": d.job, "when": d.when} for d in job.after]),
        "notify_policy": job.notify_policy,
        "notify_channels": json.dumps(list(job.notify_channels)),
        "notify_emails": json.dumps(list(job.notify_emails)),
        "notify_phones": json.dumps(list(job.notify_phones)),
        "description": job.description,
        "owner": job.owner,
        "tags": json.dumps(list(job.tags)),
    }


def _json_map(value: str, column: str) -> dict[str, str]:
    if not value or value == "{}":  # most rows: no need for the parser
        return {}
    loaded = json.loads(value)
    if not isinstance(loaded, dict):
        raise ValueError(f"{column}: expected a JSON object")
    return {str(k): str(v) for k, v in loaded.items()}


def _json_list(value: str, column: str) -> list[Any]:
    if not value or value == "[]":  # most rows: no need for the parser
        return []
    loaded = json.loads(value)
    if not isinstance(loaded, list):
        raise ValueError(f"{column}: expected a JSON list")
    return loaded


def _shared(value: Any) -> Any:
    """One string object for a value many jobs have (zone, type, policy,
    spec): the driver makes a new one per row, which at 100,000 jobs kept
    tens of MB of identical strings alive."""
    return sys.intern(value) if type(value) is str else _text(value)


def _text(value: Any, column: str = "a text column") -> str:
    # SQLite stores whatever a plain-SQL write gives it: X'..' literals come
    # back as bytes, numbers as numbers.
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        raise ValueError(f"{column}: binary data where text was expected: {bytes(value)[:40]!r}")
    return str(value)


# Numeric settings (timeouts, retry tuning) take few distinct values; the
# driver makes a float object per row and column. Bounded, so odd values
# cannot grow it without limit.
_NUMBERS: dict[float, float] = {}
_NUMBERS_MAX = 4096


def _number(value: Any, column: str) -> float:
    try:
        number = float(value or 0)
    except (TypeError, ValueError):
        raise ValueError(f"{column}: expected a number, got {value!r}") from None
    shared = _NUMBERS.get(number)
    if shared is not None:
        return shared
    if len(_NUMBERS) < _NUMBERS_MAX:
        _NUMBERS[number] = number
    return number


def _integer(value: Any, column: str) -> int:
    # SQLite keeps whatever text a plain-SQL write puts in an INTEGER column;
    # int("three") raises, int(2.5) would silently truncate.
    if type(value) is int:
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or value == "":
        return 0
    raise ValueError(f"{column}: expected an integer, got {value!r}")


def _strings(value: str, column: str) -> tuple[str, ...]:
    if not value or value == "[]":  # most rows: no need for the parser
        return ()
    return tuple(str(v) for v in _json_list(value, column))


def _statuses(value: Any) -> tuple[int, ...]:
    if not value:
        return ()
    return tuple(int(s) for s in str(value).replace(" ", "").split(",") if s)


def _dependencies(value: str) -> tuple[Dependency, ...]:
    if not value or value == "[]":
        return ()
    return tuple(Dependency(job=str(d["job"]), when=str(d.get("when", ON_SUCCESS))) for d in _json_list(value, "after_jobs"))


def row_to_job(row: Mapping[Any, Any]) -> Job:
    """A stored row as a Job; a row that cannot be read gets `defect` set.

    Never raises for a bad value: one row written by hand with plain SQL
    (`retries = 'three'`, text that is not UTF-8, JSON nested too deep) must
    not stop every other job from loading, listing or firing. Such a row
    becomes a Job with what could be read and the reason in `defect`, so it
    is listed (as invalid) and never scheduled.
    """
    try:
        job = _row_to_job(row)
    except Exception as exc:  # noqa: BLE001 - any bad value: report this row, keep the others
        return _unreadable_job(row, f"unreadable stored value: {_describe(exc)}")
    return job


class UndecodableText(str):
    """Text read from a column whose bytes are not UTF-8, with the bad bytes
    shown as U+FFFD (only ever made by _lenient_text, see SqlStore._read_jobs)."""


def _lenient_text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return UndecodableText(raw.decode(errors="replace"))


def _text_defect(job: Job, row: Mapping[Any, Any]) -> Job:
    if job.defect:
        return job
    columns = sorted(str(k) for k, v in row.items() if isinstance(v, UndecodableText))
    if not columns:
        return job
    return dataclasses.replace(job, defect=f"{', '.join(columns)}: stored text is not valid UTF-8")


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _unreadable_job(row: Mapping[Any, Any], defect: str) -> Job:
    """What can be shown of a row that does not convert: its id and name
    (best effort), the reason, and defaults for the rest."""

    def text(column: str) -> str:
        try:
            value = row[column]
            return value if isinstance(value, str) else str(value or "")
        except Exception:  # noqa: BLE001 - best effort: this row is already known bad
            return ""

    try:
        enabled = bool(int(row["enabled"]))
    except Exception:  # noqa: BLE001 - best effort, as above
        enabled = True
    return Job(
        id=int(row["id"]),
        name=text("name"),
        spec=text("spec"),
        command=text("command"),
        timezone=text("timezone") or "UTC",
        type=text("type") or "shell",
        enabled=enabled,
        defect=defect,
    )


def _row_to_job(row: Mapping[Any, Any]) -> Job:
    # Runs for every job when a dispatcher starts, so common values skip the
    # JSON parser and are shared between jobs (see _shared and _number).
    defect = ""
    headers: dict[str, str] = {}
    env: dict[str, str] = {}
    statuses: tuple[int, ...] = ()
    keywords: tuple[str, ...] = ()
    after: tuple[Dependency, ...] = ()
    channels: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    column = ""  # the one being read, to name it when it is bad
    try:
        column = "http_headers"
        headers = _json_map(row[column], column)
        column = "env"
        env = _json_map(row[column], column)
        column = "expected_statuses"
        statuses = _statuses(row[column])
        column = "keywords"
        keywords = _strings(row[column], column)
        column = "after_jobs"
        after = _dependencies(row[column])
        column = "notify_channels"
        channels = _strings(row[column], column)
        column = "notify_emails"
        emails = _strings(row[column], column)
        column = "notify_phones"
        phones = _strings(row[column], column)
        column = "tags"
        tags = _strings(row[column], column)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        text = _describe(exc)
        defect = f"unreadable stored value: {text if text.startswith(column) else f'{column}: {text}'}"
    return Job(
        id=int(row["id"]),
        name=_text(row["name"], "name"),
        spec=_shared(row["spec"]),
        timezone=_shared(row["timezone"] or "UTC"),
        type=_shared(row["type"]),
        command=_text(row["command"], "command"),
        http_method=_shared(row["http_method"]),
        http_headers=headers,
        http_body=_text(row["http_body"], "http_body"),
        expected_statuses=statuses,
        timeout_seconds=_number(row["timeout_seconds"], "timeout_seconds"),
        timeout_action=_shared(row["timeout_action"] or TIMEOUT_KILL),
        retries=_integer(row["retries"], "retries"),
        retry_interval_seconds=_number(row["retry_interval_seconds"], "retry_interval_seconds"),
        enabled=bool(row["enabled"]),
        target=_shared(row["target"] or ""),
        workdir=_shared(row["workdir"] or ""),
        env=env,
        overlap_policy=_shared(row["overlap_policy"]),
        misfire_policy=_shared(row["misfire_policy"]),
        catch_up_window_seconds=_number(row["catch_up_window_seconds"], "catch_up_window_seconds"),
        retry_backoff=_number(row["retry_backoff"], "retry_backoff"),
        retry_max_interval_seconds=_number(row["retry_max_interval_seconds"], "retry_max_interval_seconds"),
        retry_jitter=_number(row["retry_jitter"], "retry_jitter"),
        route_strategy=_shared(row["route_strategy"]),
        run_as_user=_shared(row["run_as_user"] or ""),
        follow_redirects=bool(row["follow_redirects"]),
        skip_tls_verify=bool(row["skip_tls_verify"]),
        keywords=keywords,
        keyword_action=_shared(row["keyword_action"]),
        after=after,
        notify_policy=_shared(row["notify_policy"]),
        notify_channels=channels,
        notify_emails=emails,
        notify_phones=phones,
        description=_text(row["description"], "description"),
        owner=_shared(row["owner"] or ""),
        tags=tuple(sys.intern(t) for t in tags),
        created_ms=int(row["created_ms"] or 0),
        updated_ms=int(row["updated_ms"] or 0),
        defect=defect,
    )


def _row_to_run(row: Mapping[Any, Any]) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        job_id=int(row["job_id"]),
        job_name=row["job_name"],
        scheduled_ms=int(row["scheduled_ms"]),
        attempt=int(row["attempt"]),
        status=row["status"],
        dispatcher=row["dispatcher"],
        executor=row["executor"],
        host=row["host"],
        pid=int(row["pid"]),
        exit_code=int(row["exit_code"]),
        started_ms=int(row["started_ms"]),
        finished_ms=int(row["finished_ms"]),
        output=bytes(row.get("output") or b""),
        output_truncated=bool(row["output_truncated"]),
        error=row["error"] or "",
        created_ms=int(row["created_ms"]),
        updated_ms=int(row["updated_ms"]),
        shard=int(row["shard"]),
        shard_total=int(row["shard_total"]),
        trigger=row["trigger"],
        overrun_ms=int(row.get("overrun_ms") or 0),
    )


_RUN_COLUMNS = frozenset(c.name for c in runs.columns)


def _like_escape(text: str) -> str:
    """`text` matched literally by LIKE ... ESCAPE '\\'."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqlStore:
    """Jobs, runs and the job change log in one SQL database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name
        # Statements built once and reused (SQLAlchemy caches their compiled form).
        self._insert_stmt: Any = None
        self._update_stmts: dict[tuple[str, ...], Any] = {}

    def close(self) -> None:
        self.engine.dispose()

    # -------------------------------------------------------------- jobs

    def create_job(self, job: Job) -> Job:
        ts = now_ms()
        values = {**_job_values(job), "created_ms": ts, "updated_ms": ts}
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
        values = {**_job_values(job), "updated_ms": now_ms()}
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
                driver.text_factory = _lenient_text  # type: ignore[union-attr]
            try:
                # Rows in batches, each turned into a Job at once: holding every
                # row and every Job together raised a dispatcher's peak memory by
                # tens of MB at start-up with 100,000 jobs.
                rows = conn.execution_options(yield_per=1000).execute(query).mappings()
                if lenient:
                    return [_text_defect(row_to_job(r), r) for r in rows]
                return [row_to_job(r) for r in rows]
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

    # -------------------------------------------------------------- runs

    def write_runs(self, inserts: Sequence[RunRecord], updates: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]:
        """One transaction: insert runs (skipping existing firings), then apply updates.

        Returns, per insert, whether this call created the row: False means
        another dispatcher already recorded that firing attempt. Updates of
        the same run are merged in order (later fields win) and sent as one
        executemany per set of columns: at 1,000 firings a second, building a
        statement per row was the dispatcher's largest CPU cost.
        """
        merged: dict[str, dict[str, Any]] = {}
        for run_id, fields in updates:
            unknown = set(fields) - _RUN_COLUMNS
            if unknown:
                raise ValueError(f"unknown run fields: {sorted(unknown)}")
            merged.setdefault(run_id, {}).update(fields)
        stamp = now_ms()
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for run_id, fields in merged.items():
            columns = tuple(sorted(fields))
            params = {"b_run_id": run_id, "b_updated_ms": stamp, **{f"b_{c}": fields[c] for c in columns}}
            by_columns.setdefault(columns, []).append(params)
        created: list[bool] = []
        with self.engine.begin() as conn:
            insert_stmt = self._insert_statement()
            for record in inserts:
                values = {c: getattr(record, c) for c in _RUN_COLUMNS}
                values["created_ms"] = values["created_ms"] or stamp
                values["updated_ms"] = values["created_ms"]
                created.append(conn.execute(insert_stmt, values).rowcount == 1)
            for columns, params_list in by_columns.items():
                conn.execute(self._update_statement(columns), params_list)
        return created

    def _insert_statement(self) -> Any:
        if self._insert_stmt is None:
            if self._dialect == "sqlite":
                self._insert_stmt = sqlite.insert(runs).on_conflict_do_nothing()
            elif self._dialect in ("mysql", "mariadb"):
                self._insert_stmt = mysql.insert(runs).prefix_with("IGNORE")
            else:  # pragma: no cover - only the two dialects above are configured
                self._insert_stmt = insert(runs)
        return self._insert_stmt

    def _update_statement(self, columns: tuple[str, ...]) -> Any:
        stmt = self._update_stmts.get(columns)
        if stmt is None:
            values: dict[str, Any] = {c: bindparam(f"b_{c}") for c in columns}
            values["updated_ms"] = bindparam("b_updated_ms")
            stmt = update(runs).where(runs.c.run_id == bindparam("b_run_id")).values(values)
            self._update_stmts[columns] = stmt
        return stmt

    def finish_run_if_active(self, run_id: str, fields: dict[str, Any], dispatcher: str | None = None) -> bool:
        """Update a run only while it is still pending or running (and, with
        `dispatcher`, still owned by that dispatcher).

        The monitor settles orphaned runs with this; if the dispatcher, a
        dispatcher that adopted the run, or another monitor pass got there
        first, nothing is overwritten.
        """
        unknown = set(fields) - _RUN_COLUMNS
        if unknown:
            raise ValueError(f"unknown run fields: {sorted(unknown)}")
        where = [runs.c.run_id == run_id, runs.c.status.in_(sorted(status.ACTIVE))]
        if dispatcher is not None:
            where.append(runs.c.dispatcher == dispatcher)
        with self.engine.begin() as conn:
            result = conn.execute(update(runs).where(*where).values(**fields, updated_ms=now_ms()))
            return bool(result.rowcount == 1)

    def mark_overrun(self, run_id: str, at_ms: int) -> bool:
        """Record that an active run passed its timeout (timeout_action
        "alert"), once: True only for the call that set it. The dispatcher
        following the run and the monitor's scan (for a run whose dispatcher
        died) may both try; this conditional update is what makes the job's
        overrun alert go out exactly once."""
        where = [runs.c.run_id == run_id, runs.c.status.in_(sorted(status.ACTIVE)), runs.c.overrun_ms == 0]
        with self.engine.begin() as conn:
            result = conn.execute(update(runs).where(*where).values(overrun_ms=at_ms, updated_ms=now_ms()))
            return bool(result.rowcount == 1)

    def unstarted_runs_between(self, start_ms: int, end_ms: int, not_dispatcher: str) -> list[RunRecord]:
        """Pending runs scheduled in [start_ms, end_ms) that no executor has
        reported starting, recorded by dispatchers other than `not_dispatcher`."""
        query = select(runs).where(
            runs.c.scheduled_ms >= start_ms,
            runs.c.scheduled_ms < end_ms,
            runs.c.status == status.PENDING,
            runs.c.executor == "",
            runs.c.dispatcher != not_dispatcher,
        )
        with self.engine.connect() as conn:
            return [_row_to_run(r) for r in conn.execute(query).mappings().all()]

    def adopt_run(self, run_id: str, old_dispatcher: str, new_dispatcher: str) -> bool:
        """Make `new_dispatcher` the owner of a pending run of `old_dispatcher`
        that no executor has reported starting; False when anything about it
        changed meanwhile (so of two adopters, and the monitor, one wins)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(runs)
                .where(
                    runs.c.run_id == run_id,
                    runs.c.status == status.PENDING,
                    runs.c.executor == "",
                    runs.c.dispatcher == old_dispatcher,
                )
                .values(dispatcher=new_dispatcher, updated_ms=now_ms())
            )
            return bool(result.rowcount == 1)

    def firings_between(self, start_ms: int, end_ms: int) -> set[tuple[int, int]]:
        """(job_id, scheduled_ms) of every run scheduled in [start_ms, end_ms)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(runs.c.job_id, runs.c.scheduled_ms)
                .where(runs.c.scheduled_ms >= start_ms, runs.c.scheduled_ms < end_ms)
                .distinct()
            ).all()
        return {(int(r.job_id), int(r.scheduled_ms)) for r in rows}

    def set_enabled(self, job_id: int, enabled: bool) -> Job | None:
        with self.engine.begin() as conn:
            result = conn.execute(update(jobs).where(jobs.c.id == job_id).values(enabled=enabled, updated_ms=now_ms()))
            if result.rowcount == 0:
                return None
        # Read back on its own: a row with text that is not UTF-8 can still be paused.
        found = self._read_jobs(select(jobs).where(jobs.c.id == job_id))
        return found[0] if found else None

    def active_runs_of(self, job_id: int) -> list[RunRecord]:
        """Runs of the job still pending or running (for its overlap policy)."""
        query = select(runs).where(runs.c.job_id == job_id, runs.c.status.in_(sorted(status.ACTIVE)))
        with self.engine.connect() as conn:
            return [_row_to_run(r) for r in conn.execute(query).mappings().all()]

    def queued_runs_of(self, job_id: int) -> list[RunRecord]:
        query = select(runs).where(runs.c.job_id == job_id, runs.c.status == status.QUEUED).order_by(runs.c.scheduled_ms)
        with self.engine.connect() as conn:
            return [_row_to_run(r) for r in conn.execute(query).mappings().all()]

    def promote_queued(self, run_id: str) -> bool:
        """queued -> pending, once: the dispatcher that wins this starts the run."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(runs)
                .where(runs.c.run_id == run_id, runs.c.status == status.QUEUED)
                .values(status=status.PENDING, updated_ms=now_ms())
            )
            return bool(result.rowcount == 1)

    def last_fired(self, job_ids: Sequence[int]) -> dict[int, int]:
        """The newest scheduled time with a run, per job (for misfire catch-up)."""
        out: dict[int, int] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(job_ids), 500):
                chunk = list(job_ids[start : start + 500])
                rows = conn.execute(
                    select(runs.c.job_id, func.max(runs.c.scheduled_ms)).where(runs.c.job_id.in_(chunk)).group_by(runs.c.job_id)
                ).all()
                out.update({int(job_id): int(last) for job_id, last in rows})
        return out

    def get_run(self, run_id: str) -> RunRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.run_id == run_id)).mappings().first()
        return _row_to_run(row) if row is not None else None

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
    ) -> list[RunRecord]:
        """Runs newest first, by (scheduled_ms, attempt, run_id) descending: a
        total order, so a page boundary never falls between runs sharing a
        millisecond (every job on "0 * * * *" fires in the same one).

        `older_than` is the (scheduled_ms, attempt, run_id) of the last run
        of the previous page: only runs after it in that order. `since_ms` is
        inclusive, `until_ms` and `before_ms` (its older name) exclusive.
        Without `with_output` the output column is not even read (list
        pages are summaries; a page of 64 KiB tails exceeded gRPC's cap).
        """
        columns = [c for c in runs.columns if with_output or c.name != "output"]
        wanted = sorted(set(statuses))
        if len(wanted) > 1:
            # One index range scan per status (ix_runs_status_scheduled_id),
            # merged here: `status IN (...)` ordered by time made both
            # databases read and sort every run with those statuses.
            pages = [
                self._runs_page(columns, job_id, job_name, one, limit, until_ms or before_ms, since_ms, older_than)
                for one in wanted
            ]
            merged = heapq.merge(*pages, key=lambda r: (r.scheduled_ms, r.attempt, r.run_id), reverse=True)
            return list(itertools.islice(merged, limit))
        one = wanted[0] if wanted else ""
        return self._runs_page(columns, job_id, job_name, one, limit, until_ms or before_ms, since_ms, older_than)

    def _runs_page(
        self,
        columns: list[Any],
        job_id: int,
        job_name: str,
        run_status: str,
        limit: int,
        upper: int,
        since_ms: int,
        older_than: tuple[int, int, str] | None,
    ) -> list[RunRecord]:
        query = select(*columns)
        if upper:
            query = query.where(runs.c.scheduled_ms < upper)
        if since_ms:
            query = query.where(runs.c.scheduled_ms >= since_ms)
        if older_than is not None:
            at, attempt, run_id = older_than
            # The redundant `<= at` gives the database an index range to scan.
            query = query.where(
                runs.c.scheduled_ms <= at,
                or_(
                    runs.c.scheduled_ms < at,
                    runs.c.attempt < attempt,
                    and_(runs.c.attempt == attempt, runs.c.run_id < run_id),
                ),
            )
        if job_id:
            query = query.where(runs.c.job_id == job_id)
        elif job_name:
            query = query.where(runs.c.job_name == job_name)
        if run_status:
            query = query.where(runs.c.status == run_status)
        query = query.order_by(runs.c.scheduled_ms.desc(), runs.c.attempt.desc(), runs.c.run_id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_row_to_run(r) for r in conn.execute(query).mappings().all()]

    def count_runs_by_bucket(
        self, *, since_ms: int, until_ms: int, bucket_ms: int, job_name: str = ""
    ) -> dict[int, dict[str, int]]:
        """As count_runs, per bucket of bucket_ms from since_ms: {bucket start: {status: runs}},
        buckets with runs only. Read the same way (the index alone, per status)."""
        offset = runs.c.scheduled_ms - since_ms
        bucket = (offset - offset % bucket_ms).label("bucket")  # whole ms on both databases, no division
        where = [runs.c.scheduled_ms >= since_ms, runs.c.scheduled_ms < until_ms]
        out: dict[int, dict[str, int]] = {}
        with self.engine.connect() as conn:
            if job_name:
                query = (
                    select(bucket, runs.c.status, func.count())
                    .where(runs.c.job_name == job_name, *where)
                    .group_by(bucket, runs.c.status)
                )
                rows = [(int(b), str(state), int(n)) for b, state, n in conn.execute(query).all()]
            else:
                rows = []
                for state in sorted(status.ALL):
                    query = select(bucket, func.count()).where(runs.c.status == state, *where).group_by(bucket)
                    rows += [(int(b), state, int(n)) for b, n in conn.execute(query).all()]
        for b, state, n in rows:
            out.setdefault(since_ms + b, {})[state] = n
        return dict(sorted(out.items()))

    def count_runs(self, *, since_ms: int, until_ms: int = 0, job_name: str = "") -> dict[str, int]:
        """Runs scheduled in [since_ms, until_ms) by status (0 = no upper bound);
        statuses with none are left out.

        All jobs: one count per status, each over its own range of
        ix_runs_status_scheduled_id, read from the index alone (a GROUP BY
        status over the time range would visit every run's row). One job:
        its range of ix_runs_name_scheduled_id, grouped.
        """
        window = [runs.c.scheduled_ms >= since_ms]
        if until_ms:
            window.append(runs.c.scheduled_ms < until_ms)
        counts: dict[str, int] = {}
        with self.engine.connect() as conn:
            if job_name:
                query = select(runs.c.status, func.count()).where(runs.c.job_name == job_name, *window).group_by(runs.c.status)
                counts = {str(state): int(n) for state, n in conn.execute(query).all()}
            else:
                for state in sorted(status.ALL):
                    query = select(func.count()).select_from(runs).where(runs.c.status == state, *window)
                    counts[state] = int(conn.execute(query).scalar_one())
        return {state: n for state, n in counts.items() if n}

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
