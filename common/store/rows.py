"""Stored rows as model objects and back: jobs and runs.

Reading is lenient on purpose: a row written by hand with plain SQL must not
stop every other job from loading (see row_to_job). Common values are shared
between rows to keep a dispatcher with 100,000 jobs small.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from typing import Any

from crontrio.common.model import ON_SUCCESS, TIMEOUT_KILL, Dependency, Job, RunRecord


def job_values(job: Job) -> dict[str, Any]:
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
    shown as U+FFFD (only ever made by lenient_text, see JobQueries._read_jobs in job_queries.py)."""


def lenient_text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return UndecodableText(raw.decode(errors="replace"))


def text_defect(job: Job, row: Mapping[Any, Any]) -> Job:
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
        # Most rows hold empty values here: those are told apart inline, a
        # call per column and row being a measurable part of a full load.
        column = "http_headers"
        if (value := row[column]) and value != "{}":
            headers = _json_map(value, column)
        column = "env"
        if (value := row[column]) and value != "{}":
            env = _json_map(value, column)
        column = "expected_statuses"
        if value := row[column]:
            statuses = _statuses(value)
        column = "keywords"
        if (value := row[column]) and value != "[]":
            keywords = _strings(value, column)
        column = "after_jobs"
        if (value := row[column]) and value != "[]":
            after = _dependencies(value)
        column = "notify_channels"
        if (value := row[column]) and value != "[]":
            channels = _strings(value, column)
        column = "notify_emails"
        if (value := row[column]) and value != "[]":
            emails = _strings(value, column)
        column = "notify_phones"
        if (value := row[column]) and value != "[]":
            phones = _strings(value, column)
        column = "tags"
        if (value := row[column]) and value != "[]":
            tags = tuple(sys.intern(t) for t in _strings(value, column))
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
        tags=tags,
        created_ms=int(row["created_ms"] or 0),
        updated_ms=int(row["updated_ms"] or 0),
        defect=defect,
    )


def row_to_run(row: Mapping[Any, Any]) -> RunRecord:
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
