"""Many stored job rows as Jobs at once, column by column (a full load).

rows.row_to_job converts one row with some forty calls of small helpers; at
100,000 jobs that was the largest part of a dispatcher's start-up. Here a
batch of rows is turned into columns, each column is converted once per
distinct value (zones, policies, specs and settings repeat across jobs), and
the Jobs are built by one map over the columns.

The result is the list row_to_job gives, value for value. A batch holding
anything this path does not take as it is (not text where text is expected,
an integer stored as text, JSON that does not parse, ...) is converted row by
row by row_to_job instead, which reports such rows as defective.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import sys
from collections.abc import Callable, Sequence
from typing import Any

from crontrio.common.model import TIMEOUT_KILL, Job
from crontrio.common.store.rows import (
    _dependencies,
    _json_map,
    _number,
    _shared,
    _statuses,
    _strings,
    row_to_job,
)

# Job's fields in the order its __init__ takes them positionally.
_FIELDS = tuple(f.name for f in dataclasses.fields(Job))
_NONE = type(None)
# Each field's slot setter, in _FIELDS order (see _jobs).
_SETTERS = tuple(getattr(Job, name).__set__ for name in _FIELDS)
# Setting the slots does all Job.__init__ does only while it has nothing
# else to do: no __post_init__, no field left out of __init__.
_BY_SLOTS = not hasattr(Job, "__post_init__") and all(f.init for f in dataclasses.fields(Job))


class _RowByRowError(Exception):
    """A value this path does not take as it is: the batch goes through row_to_job."""


def rows_to_jobs(keys: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Job]:
    """The rows (values in `keys` order) as Jobs, as [row_to_job(row) ...] would make them."""
    if not rows:
        return []
    try:
        return _by_columns(dict(zip(keys, zip(*rows, strict=True), strict=True)))
    except Exception:  # noqa: BLE001 - any surprise: the row-by-row path decides, and names bad rows
        return [row_to_job(dict(zip(keys, row, strict=True))) for row in rows]


def _by_columns(col: dict[str, tuple[Any, ...]]) -> list[Job]:
    # Each line does what _row_to_job does to that column (see rows.py).
    values: dict[str, Any] = {
        "id": _as_is(col["id"], int),
        "name": _as_is(col["name"], str),
        "spec": _each_distinct(col["spec"], _shared),
        "timezone": _each_distinct(col["timezone"], lambda v: _shared(v or "UTC")),
        "type": _each_distinct(col["type"], _shared),
        "command": _as_is(col["command"], str),
        "http_method": _each_distinct(col["http_method"], _shared),
        # A dict of its own for every job, as row by row.
        "http_headers": list(map(dict, _each_distinct(col["http_headers"], _headers))),
        "http_body": _as_is(col["http_body"], str),
        "expected_statuses": _each_distinct(col["expected_statuses"], lambda v: _statuses(v) if v else ()),
        "timeout_seconds": _numbers(col["timeout_seconds"], "timeout_seconds"),
        "timeout_action": _each_distinct(col["timeout_action"], lambda v: _shared(v or TIMEOUT_KILL)),
        "retries": _as_is(col["retries"], int),
        "retry_interval_seconds": _numbers(col["retry_interval_seconds"], "retry_interval_seconds"),
        "enabled": list(map(bool, col["enabled"])),
        "target": _each_distinct(col["target"], lambda v: _shared(v or "")),
        "workdir": _each_distinct(col["workdir"], lambda v: _shared(v or "")),
        "env": list(map(dict, _each_distinct(col["env"], _env))),
        "overlap_policy": _each_distinct(col["overlap_policy"], _shared),
        "misfire_policy": _each_distinct(col["misfire_policy"], _shared),
        "catch_up_window_seconds": _numbers(col["catch_up_window_seconds"], "catch_up_window_seconds"),
        "retry_backoff": _numbers(col["retry_backoff"], "retry_backoff"),
        "retry_max_interval_seconds": _numbers(col["retry_max_interval_seconds"], "retry_max_interval_seconds"),
        "retry_jitter": _numbers(col["retry_jitter"], "retry_jitter"),
        "route_strategy": _each_distinct(col["route_strategy"], _shared),
        "run_as_user": _each_distinct(col["run_as_user"], lambda v: _shared(v or "")),
        "follow_redirects": list(map(bool, col["follow_redirects"])),
        "skip_tls_verify": list(map(bool, col["skip_tls_verify"])),
        "keywords": _each_distinct(col["keywords"], _list_of("keywords")),
        "keyword_action": _each_distinct(col["keyword_action"], _shared),
        "after": _each_distinct(col["after_jobs"], lambda v: _dependencies(v) if v and v != "[]" else ()),
        "notify_policy": _each_distinct(col["notify_policy"], _shared),
        "notify_channels": _each_distinct(col["notify_channels"], _list_of("notify_channels")),
        "notify_emails": _each_distinct(col["notify_emails"], _list_of("notify_emails")),
        "notify_phones": _each_distinct(col["notify_phones"], _list_of("notify_phones")),
        "description": _as_is(col["description"], str),
        "owner": _each_distinct(col["owner"], lambda v: _shared(v or "")),
        "tags": _each_distinct(col["tags"], _tags),
        "created_ms": _as_is(col["created_ms"], int),
        "updated_ms": _as_is(col["updated_ms"], int),
        "defect": itertools.repeat(""),
    }
    return _jobs(len(col["id"]), [values[name] for name in _FIELDS])


def _jobs(count: int, columns: list[Any]) -> list[Job]:
    """[Job(*values) for values in zip(*columns)], the first `count`, built a field at a time.

    Job is frozen, so its __init__ sets each of its forty-odd fields through
    object.__setattr__, a Python-level call per field: 0.4 s for 100,000
    jobs. Here each field's slot setter is mapped over all the jobs in C,
    which costs about half as much and makes equal Jobs.
    """
    if not _BY_SLOTS:
        return list(itertools.islice(map(Job, *columns), count))
    jobs = list(map(object.__new__, itertools.repeat(Job, count)))
    for set_field, column in zip(_SETTERS, columns, strict=True):
        collections.deque(map(set_field, jobs, column), maxlen=0)  # consumed for its effect only
    return jobs


def _as_is(column: tuple[Any, ...], kind: type) -> tuple[Any, ...]:
    """A column row_to_job keeps unchanged when every value is of `kind`."""
    if set(map(type, column)) != {kind}:
        raise _RowByRowError
    return column


def _each_distinct(column: tuple[Any, ...], convert: Callable[[Any], Any]) -> list[Any]:
    """convert(value) for every value, computed once per distinct value.

    Text (or NULL) only: equal text values are the same value, whereas an
    integer 1 and a float 1.0 are equal keys that convert differently. The
    distinct values are enough to look at: no value of another type a
    driver returns (number, bytes, date) equals a text, so any such value
    in the column is among them. Many columns hold one value for every job
    (a default): their list is that value repeated."""
    distinct = set(column)
    if not set(map(type, distinct)) <= {str, _NONE}:
        raise _RowByRowError
    if len(distinct) == 1:
        return [convert(next(iter(distinct)))] * len(column)
    done = {value: convert(value) for value in distinct}
    return list(map(done.__getitem__, column))


def _numbers(column: tuple[Any, ...], name: str) -> list[float]:
    # _number turns equal numbers (1 and 1.0 alike) into the same float.
    if not set(map(type, column)) <= {float, int}:
        raise _RowByRowError
    done = {value: _number(value, name) for value in set(column)}
    return list(map(done.__getitem__, column))


def _headers(value: str | None) -> dict[str, str]:
    return _json_map(value, "http_headers") if value and value != "{}" else {}


def _env(value: str | None) -> dict[str, str]:
    return _json_map(value, "env") if value and value != "{}" else {}


def _list_of(name: str) -> Callable[[str | None], tuple[str, ...]]:
    return lambda value: _strings(value, name) if value and value != "[]" else ()


def _tags(value: str | None) -> tuple[str, ...]:
    return tuple(sys.intern(t) for t in _strings(value, "tags")) if value and value != "[]" else ()
