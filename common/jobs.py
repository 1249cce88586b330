"""Job validation: every field checked, the first bad one named.

Used twice on purpose: by cronctl for instant feedback, and by the dispatcher,
which is the authority (any gRPC client can call it, and rows written with
plain SQL are validated when loaded).
"""

from __future__ import annotations

import dataclasses
import math
import re

import httpx

from common.cron import CronSchedule, validate_timezone
from common.errors import ValidationError
from common.model import HTTP_METHODS, SHELL, TASK_TYPES, Job

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
HEADER_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_RETRIES = 100
MAX_RETRY_INTERVAL_SECONDS = 24 * 3600


def _finite_range(field: str, value: float, low: float, high: float, unit: str = "seconds") -> None:
    if not math.isfinite(value) or value < low or value > high:
        raise ValidationError(field, f"must be between {low:g} and {high:g} {unit}, got {value:g}")


def validate_job(job: Job) -> Job:
    """The job with normalised fields (canonical zone, upper-case method), or ValidationError."""
    if job.defect:
        raise ValidationError("job", job.defect)
    name = job.name.strip()
    if not NAME_RE.match(name):
        raise ValidationError(
            "name", f"{job.name!r} is not a valid name: 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    timezone = validate_timezone(job.timezone)
    spec = " ".join(job.spec.split())
    CronSchedule.parse(spec, timezone, hash_key=name)  # raises ValidationError("spec", ...)
    task_type = (job.type or SHELL).strip().lower()
    if task_type not in TASK_TYPES:
        raise ValidationError("type", f"expected one of {', '.join(TASK_TYPES)}, got {job.type!r}")
    command = job.command.strip()
    method = (job.http_method or "GET").strip().upper()
    if task_type == SHELL:
        if not command:
            raise ValidationError("command", "must not be empty")
        if "\x00" in command:
            raise ValidationError("command", "must not contain NUL bytes")
    else:
        _validate_url(command)
        if method not in HTTP_METHODS:
            raise ValidationError("method", f"expected one of {', '.join(HTTP_METHODS)}, got {job.http_method!r}")
    for header in job.http_headers:
        if not HEADER_RE.match(header):
            raise ValidationError("headers", f"{header!r} is not a valid HTTP header name")
    for status in job.expected_statuses:
        if not 100 <= status <= 599:
            raise ValidationError("expected_statuses", f"{status} is not an HTTP status (100-599)")
    _finite_range("timeout", job.timeout_seconds, 0, MAX_TIMEOUT_SECONDS)
    if not 0 <= job.retries <= MAX_RETRIES:
        raise ValidationError("retries", f"must be between 0 and {MAX_RETRIES}, got {job.retries}")
    _finite_range("retry_interval", job.retry_interval_seconds, 0, MAX_RETRY_INTERVAL_SECONDS)
    if job.workdir and not job.workdir.startswith("/"):
        raise ValidationError("workdir", f"must be an absolute path, got {job.workdir!r}")
    for key in job.env:
        if not ENV_RE.match(key):
            raise ValidationError("env", f"{key!r} is not a valid environment variable name")
    if job.target != job.target.strip() or any(c.isspace() for c in job.target):
        raise ValidationError("target", f"must not contain spaces, got {job.target!r}")
    return dataclasses.replace(job, name=name, spec=spec, timezone=timezone, type=task_type, command=command, http_method=method)


def _validate_url(url: str) -> None:
    if not url:
        raise ValidationError("command", "an http job needs a URL as its command")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValidationError("command", f"{url!r} is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValidationError("command", f"{url!r} is not an http:// or https:// URL")


def schedule_of(job: Job) -> CronSchedule:
    """The parsed schedule of an already validated job."""
    return CronSchedule.parse(job.spec, job.timezone, hash_key=job.name)
