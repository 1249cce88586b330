"""Job validation: every field checked, the first bad one named.

Used twice on purpose: by cronctl for instant feedback, and by the dispatcher,
which is the authority (any gRPC client can call it, and rows written with
plain SQL are validated when loaded).
"""

from __future__ import annotations

import dataclasses
import math
import re

from crontrio.common import task_rules
from crontrio.common.cron import CronSchedule, validate_timezone
from crontrio.common.errors import ValidationError
from crontrio.common.model import (
    ALERT_CHANNELS,
    DEPENDENCY_CONDITIONS,
    HTTP_METHODS,
    KEYWORD_ACTIONS,
    MISFIRE_POLICIES,
    NOTIFY_POLICIES,
    OVERLAP_POLICIES,
    ROUTE_STRATEGIES,
    SHELL,
    TASK_TYPES,
    TIMEOUT_ACTIONS,
    Job,
)
from crontrio.common.task_rules import MAX_TARGET_CHARS, MAX_TIMEZONE_CHARS, check_spec_length

# Matched with fullmatch: `$` also matches before a trailing newline, which
# let "name\n" through.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_RETRIES = 100
MAX_RETRY_INTERVAL_SECONDS = 24 * 3600
MAX_CATCH_UP_SECONDS = 7 * 24 * 3600
PHONE_RE = re.compile(r"\+?[0-9]{3,20}")


def _finite_range(field: str, value: float, low: float, high: float, unit: str = "seconds") -> None:
    if not math.isfinite(value) or value < low or value > high:
        raise ValidationError(field, f"must be between {low:g} and {high:g} {unit}, got {value:g}")


def validate_job(job: Job) -> Job:
    """The job with normalised fields (canonical zone, upper-case method), or ValidationError."""
    return validate_job_schedule(job)[0]


def validate_job_schedule(job: Job) -> tuple[Job, CronSchedule | None]:
    """validate_job(), and the job's parsed schedule (None for a job that only
    runs after its upstreams), so a caller that schedules it parses it once."""
    if job.defect:
        raise ValidationError("job", job.defect)
    name = job.name.strip()
    if not NAME_RE.fullmatch(name):
        raise ValidationError(
            "name", f"{job.name!r} is not a valid name: 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if len(job.timezone) > MAX_TIMEZONE_CHARS:
        raise ValidationError("timezone", f"at most {MAX_TIMEZONE_CHARS} characters, got {len(job.timezone)}")
    timezone = validate_timezone(job.timezone)
    # Bounded before parsing: parsing is the costly part, and the column holds 255.
    check_spec_length(job.spec.strip())
    spec = " ".join(job.spec.split())
    cron = None
    if spec or not job.after:  # a job with upstreams may have no schedule of its own
        if not spec:
            raise ValidationError("spec", "must not be empty (only a job with --after may have no schedule)")
        cron = CronSchedule.parse(spec, timezone, hash_key=name)  # raises ValidationError("spec", ...)
    task_type = (job.type or SHELL).strip().lower()
    if task_type not in TASK_TYPES:
        raise ValidationError("type", f"expected one of {', '.join(TASK_TYPES)}, got {job.type!r}")
    command = job.command.strip()
    method = (job.http_method or "GET").strip().upper()
    # The task's own fields follow common.task_rules, the rules the executor
    # applies to every run: what is accepted here runs there.
    if task_type == SHELL:
        task_rules.check_command(command)
    else:
        _validate_url(command)
        if method not in HTTP_METHODS:
            raise ValidationError("method", f"expected one of {', '.join(HTTP_METHODS)}, got {job.http_method!r}")
    # Runs for every job when a dispatcher loads (100,000 at start-up): the
    # checks below are skipped for the empty and in-range values most jobs
    # hold, which every check accepts anyway, and taken (raising as before)
    # only when a value could be wrong.
    if job.http_headers:
        task_rules.check_headers(job.http_headers)
    if job.http_body:
        task_rules.check_body(job.http_body)
    if job.expected_statuses:
        task_rules.check_expected_statuses(job.expected_statuses)
    if not 0 <= job.timeout_seconds <= MAX_TIMEOUT_SECONDS:  # also false for NaN
        _finite_range("timeout", job.timeout_seconds, 0, MAX_TIMEOUT_SECONDS)
    if job.timeout_action not in TIMEOUT_ACTIONS:
        _one_of("timeout_action", job.timeout_action, TIMEOUT_ACTIONS)
    if not 0 <= job.retries <= MAX_RETRIES:
        raise ValidationError("retries", f"must be between 0 and {MAX_RETRIES}, got {job.retries}")
    if not 0 <= job.retry_interval_seconds <= MAX_RETRY_INTERVAL_SECONDS:
        _finite_range("retry_interval", job.retry_interval_seconds, 0, MAX_RETRY_INTERVAL_SECONDS)
    if job.workdir:
        task_rules.check_workdir(job.workdir)
    if job.env:
        task_rules.check_env(job.env)
    if job.target:
        if job.target != job.target.strip() or any(c.isspace() for c in job.target):
            raise ValidationError("target", f"must not contain spaces, got {job.target!r}")
        if len(job.target) > MAX_TARGET_CHARS:
            raise ValidationError("target", f"at most {MAX_TARGET_CHARS} characters, got {len(job.target)}")
    if job.overlap_policy not in OVERLAP_POLICIES:
        _one_of("overlap", job.overlap_policy, OVERLAP_POLICIES)
    if job.misfire_policy not in MISFIRE_POLICIES:
        _one_of("misfire", job.misfire_policy, MISFIRE_POLICIES)
    if not 0 <= job.catch_up_window_seconds <= MAX_CATCH_UP_SECONDS:
        _finite_range("catch_up_window", job.catch_up_window_seconds, 0, MAX_CATCH_UP_SECONDS)
    if not 1 <= job.retry_backoff <= 10:
        _finite_range("retry_backoff", job.retry_backoff, 1, 10, unit="(multiplier)")
    if not 0 <= job.retry_max_interval_seconds <= MAX_RETRY_INTERVAL_SECONDS:
        _finite_range("retry_max_interval", job.retry_max_interval_seconds, 0, MAX_RETRY_INTERVAL_SECONDS)
    if not 0 <= job.retry_jitter <= 1:
        _finite_range("retry_jitter", job.retry_jitter, 0, 1, unit="(fraction of the delay)")
    if job.route_strategy not in ROUTE_STRATEGIES:
        _one_of("route", job.route_strategy, ROUTE_STRATEGIES)
    if job.run_as_user:
        task_rules.check_user(job.run_as_user)
        if task_type != SHELL:
            raise ValidationError("user", "only shell jobs run as a user")
    if job.keywords:
        task_rules.check_keywords(job.keywords)
    if job.keyword_action not in KEYWORD_ACTIONS:
        _one_of("keyword_action", job.keyword_action, KEYWORD_ACTIONS)
    if job.after:
        _check_after(job, name)
    if job.notify_policy not in NOTIFY_POLICIES:
        _one_of("notify", job.notify_policy, NOTIFY_POLICIES)
    if job.notify_channels or job.notify_emails or job.notify_phones:
        _check_notify_lists(job)
    if job.description:
        task_rules.check_description(job.description)
    if job.owner:
        task_rules.check_owner(job.owner)
    if job.tags:
        task_rules.check_tags(job.tags)
    if job.after:
        stored_after = [{"job": d.job, "when": d.when} for d in job.after]  # as the store writes it
        task_rules.check_stored_json("after", stored_after, sum(len(d.job) + 32 for d in job.after))
    if (name, spec, timezone, task_type, command, method) == (
        job.name,
        job.spec,
        job.timezone,
        job.type,
        job.command,
        job.http_method,
    ):
        return job, cron  # already normal, as stored jobs are: no second copy of each
    normal = dataclasses.replace(
        job, name=name, spec=spec, timezone=timezone, type=task_type, command=command, http_method=method
    )
    return normal, cron


def _check_after(job: Job, name: str) -> None:
    seen: set[str] = set()
    for dep in job.after:
        if not NAME_RE.fullmatch(dep.job):
            raise ValidationError("after", f"{dep.job!r} is not a job name")
        if dep.job == name:
            raise ValidationError("after", "a job cannot run after itself")
        if dep.job in seen:
            raise ValidationError("after", f"{dep.job!r} is listed twice")
        seen.add(dep.job)
        _one_of("after", dep.when, DEPENDENCY_CONDITIONS)


def _check_notify_lists(job: Job) -> None:
    for channel in job.notify_channels:
        _one_of("notify_channels", channel, ALERT_CHANNELS)
    for address in job.notify_emails:
        if not address or any(c.isspace() for c in address):
            raise ValidationError("notify_emails", f"{address!r} is neither an address nor an [alarm_mail_list] name")
    for phone in job.notify_phones:
        if not PHONE_RE.fullmatch(phone):
            raise ValidationError("notify_phones", f"{phone!r} is not a phone number (digits, optional leading +)")
    # The other lists are stored as JSON in TEXT columns too.
    for field, values in (
        ("notify_channels", job.notify_channels),
        ("notify_emails", job.notify_emails),
        ("notify_phones", job.notify_phones),
    ):
        task_rules.check_stored_json(field, list(values), sum(len(v) for v in values))


def _one_of(field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValidationError(field, f"expected one of {', '.join(allowed)}, got {value!r}")


def check_dependencies(job: Job, others: list[Job]) -> None:
    """Upstreams must exist and the after-graph must stay acyclic with `job` in it.

    `others` are the stored jobs (a stored version of `job` itself is replaced).
    """
    by_name = {j.name: j for j in others if not (job.id and j.id == job.id)}
    by_name[job.name] = job
    for dep in job.after:
        if dep.job not in by_name:
            raise ValidationError("after", f"no job named {dep.job!r}")
    path: list[str] = []

    def visit(name: str) -> None:
        # Depth-first from job through its upstreams; meeting a name already
        # on the path means the graph has a cycle through it.
        if name in path:
            cycle = [*path[path.index(name) :], name]
            raise ValidationError("after", "dependency cycle: " + " -> ".join(cycle))
        current = by_name.get(name)
        if current is None:
            return
        path.append(name)
        for dep in current.after:
            visit(dep.job)
        path.pop()

    visit(job.name)


def _validate_url(url: str) -> None:
    if not url:
        raise ValidationError("command", "an http job needs a URL as its command")
    task_rules.check_url_text(url)
    # Imported at the first http job: a dispatcher that loads only shell
    # jobs is spared the HTTP client's import (~25 ms of its start-up).
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValidationError("command", f"{url!r} is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValidationError("command", f"{url!r} is not an http:// or https:// URL")


def schedule_of(job: Job) -> CronSchedule | None:
    """The parsed schedule of an already validated job; None for a job that
    only runs after its upstreams."""
    if not job.spec:
        return None
    return CronSchedule.parse(job.spec, job.timezone, hash_key=job.name)
