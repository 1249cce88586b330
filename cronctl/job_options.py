"""The job fields as cronctl options: one table for `job add` and `job edit`.

`job add` fills unset options from the defaults shown in --help; `job edit`
changes only the options given (a repeatable option given replaces the
whole list; give it once with an empty value to clear it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from crontrio.common.errors import ValidationError
from crontrio.common.model import (
    ALERT_CHANNELS,
    DEPENDENCY_CONDITIONS,
    HTTP_METHODS,
    KEYWORD_ACTIONS,
    MISFIRE_POLICIES,
    NOTIFY_POLICIES,
    ON_SUCCESS,
    OVERLAP_POLICIES,
    ROUTE_STRATEGIES,
    TASK_TYPES,
    TIMEOUT_ACTIONS,
    Dependency,
    Job,
)

DEFAULTS = Job(name="", spec="", command="")


def _number(field: str, whole: bool = False) -> Callable[[str], float | int]:
    def convert(text: str) -> float | int:
        try:
            value = float(text)
        except ValueError:
            raise ValidationError(field, f"expected a number, got {text!r}") from None
        # float() takes "inf" and "nan": int() of them raised a traceback,
        # and neither is a meaningful count or duration.
        if not math.isfinite(value):
            raise ValidationError(field, f"expected a finite number, got {text!r}")
        if whole:
            if value != int(value):
                raise ValidationError(field, f"expected a whole number, got {text!r}")
            return int(value)
        return value

    return convert


def _pairs(sep: str, field: str) -> Callable[[tuple[str, ...]], dict[str, str]]:
    def convert(values: tuple[str, ...]) -> dict[str, str]:
        out: dict[str, str] = {}
        for value in values:
            if not value:
                continue
            key, found, rest = value.partition(sep)
            if not found or not key.strip():
                raise ValidationError(field, f"expected KEY{sep}VALUE, got {value!r}")
            out[key.strip()] = rest.strip() if sep == ":" else rest
        return out

    return convert


def _dependencies(values: tuple[str, ...]) -> tuple[Dependency, ...]:
    out = []
    for value in values:
        if not value:
            continue
        name, _, when = value.partition(":")
        out.append(Dependency(job=name.strip(), when=(when.strip() or ON_SUCCESS)))
    return tuple(out)


def _non_empty(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v for v in values if v)


@dataclass(frozen=True)
class JobOption:
    flags: tuple[str, ...]
    field: str
    help: str
    convert: Callable[[Any], Any] | None = None
    multiple: bool = False
    choice: tuple[str, ...] = ()
    flag_pair: bool = False  # --x/--no-x
    metavar: str | None = None


def _choice(values: tuple[str, ...]) -> str:
    return "|".join(values)


OPTIONS: list[JobOption] = [
    JobOption(
        ("--spec",),
        "spec",
        "Cron spec: 5 fields (min hour dom month dow), 6 with seconds first, @hourly/@daily/..., @every 30s, "
        "H for a hashed value (e.g. 'H H * * *'); empty with --after = run only after other jobs.",
    ),
    JobOption(("--tz",), "timezone", "IANA time zone the spec is read in.", metavar="ZONE"),
    JobOption(("--command",), "command", "Shell command line, or the URL for --type http."),
    JobOption(("--type",), "type", "Task type.", choice=TASK_TYPES),
    JobOption(
        ("--timeout",),
        "timeout_seconds",
        "Seconds before the run is killed (TERM, grace, KILL), or reported (--timeout-action alert); 0 = no limit.",
        _number("timeout"),
        metavar="S",
    ),
    JobOption(
        ("--timeout-action",),
        "timeout_action",
        "At the timeout: kill the run, or alert once and let it run on to its real end (recorded as overrun).",
        choice=TIMEOUT_ACTIONS,
    ),
    JobOption(
        ("--retries",),
        "retries",
        "Further attempts after a failed, timed-out or lost run.",
        _number("retries", whole=True),
        metavar="N",
    ),
    JobOption(
        ("--retry-interval",), "retry_interval_seconds", "Seconds before the first retry.", _number("retry_interval"), metavar="S"
    ),
    JobOption(
        ("--retry-backoff",),
        "retry_backoff",
        "Multiply the delay by this for each further retry (1 = fixed).",
        _number("retry_backoff"),
        metavar="X",
    ),
    JobOption(
        ("--retry-max-interval",),
        "retry_max_interval_seconds",
        "Cap on the retry delay; 0 = no cap.",
        _number("retry_max_interval"),
        metavar="S",
    ),
    JobOption(
        ("--retry-jitter",),
        "retry_jitter",
        "Randomise each delay by +/- this fraction (0-1).",
        _number("retry_jitter"),
        metavar="F",
    ),
    JobOption(
        ("--overlap",),
        "overlap_policy",
        "When the previous run still goes: allow, skip (record a skipped run), queue (at most one waiting), "
        "replace (kill it, then start).",
        choice=OVERLAP_POLICIES,
    ),
    JobOption(
        ("--misfire",),
        "misfire_policy",
        "Firings missed while every dispatcher was down: skip (record them missed), run_once (the latest), run_all.",
        choice=MISFIRE_POLICIES,
    ),
    JobOption(
        ("--catch-up-window",),
        "catch_up_window_seconds",
        "How far back --misfire run_once/run_all looks.",
        _number("catch_up_window"),
        metavar="S",
    ),
    JobOption(
        ("--target",), "target", "Where it runs: empty = any executor, group:NAME, or a host / host:port.", metavar="TARGET"
    ),
    JobOption(
        ("--route",),
        "route_strategy",
        "How an executor is chosen among those matching --target; broadcast runs on all (succeeds if all do), "
        "sharded too with CRONTRIO_SHARD_INDEX/CRONTRIO_SHARD_TOTAL set.",
        choice=ROUTE_STRATEGIES,
    ),
    JobOption(("--workdir",), "workdir", "Working directory of shell jobs (absolute).", metavar="DIR"),
    JobOption(
        ("--env",),
        "env",
        "Environment variable for shell jobs; repeatable. In job edit it replaces the whole environment "
        "(--env-add / --env-remove change single variables).",
        _pairs("=", "env"),
        multiple=True,
        metavar="KEY=VALUE",
    ),
    JobOption(("--user",), "run_as_user", "Run shell jobs as this OS user (the executor must run as root).", metavar="USER"),
    JobOption(("--method",), "http_method", "HTTP method (http jobs).", choice=HTTP_METHODS),
    JobOption(
        ("--header",),
        "http_headers",
        "HTTP header (http jobs); repeatable.",
        _pairs(":", "header"),
        multiple=True,
        metavar="NAME:VALUE",
    ),
    JobOption(("--body",), "http_body", "HTTP request body (http jobs)."),
    JobOption(
        ("--expect-status",),
        "expected_statuses",
        "HTTP status meaning success (default any 2xx); repeatable.",
        lambda values: tuple(int(_number("expected_statuses", whole=True)(v)) for v in values if v),
        multiple=True,
        metavar="CODE",
    ),
    JobOption(
        ("--follow-redirects/--no-follow-redirects",),
        "follow_redirects",
        "HTTP jobs: follow 3xx redirects (default: the 3xx is the result).",
        flag_pair=True,
    ),
    JobOption(
        ("--tls-verify/--no-tls-verify",),
        "skip_tls_verify",
        "HTTP jobs: verify the server certificate.",
        lambda verify: not verify,
        flag_pair=True,
    ),
    JobOption(
        ("--keyword",),
        "keywords",
        "A run whose output contains this is marked failed (see --keyword-action); repeatable.",
        _non_empty,
        multiple=True,
        metavar="TEXT",
    ),
    JobOption(("--keyword-action",), "keyword_action", "fail the run, or only notify (alerts).", choice=KEYWORD_ACTIONS),
    JobOption(
        ("--notify",),
        "notify_policy",
        "When runs raise alerts: never, on_failure (failed, timeout, killed, lost, missed), always, "
        "on_keyword (output contained a --keyword).",
        choice=NOTIFY_POLICIES,
    ),
    JobOption(
        ("--notify-channel",),
        "notify_channels",
        "Alert channel: email, sms, webhook; repeatable; default: all configured.",
        _non_empty,
        multiple=True,
        choice=ALERT_CHANNELS,
    ),
    JobOption(
        ("--notify-email",),
        "notify_emails",
        "Alert mail recipient: an address or an [alarm_mail_list] name; repeatable.",
        _non_empty,
        multiple=True,
        metavar="ADDRESS",
    ),
    JobOption(
        ("--notify-phone",),
        "notify_phones",
        "Alert SMS recipient (digits, optional +); repeatable.",
        _non_empty,
        multiple=True,
        metavar="NUMBER",
    ),
    JobOption(
        ("--after",),
        "after",
        f"Run after JOB ends; WHEN is {_choice(DEPENDENCY_CONDITIONS)} (default on_success); repeatable. Cycles are refused.",
        _dependencies,
        multiple=True,
        metavar="JOB[:WHEN]",
    ),
    JobOption(
        ("--description",), "description", "What the job is for (shown by job show; at most 1,024 characters).", metavar="TEXT"
    ),
    JobOption(("--owner",), "owner", "Who answers for the job: a person or team, one word.", metavar="WHO"),
    JobOption(
        ("--tag",),
        "tags",
        "Label to find the job by (`job list --tag`): a lower-case slug; repeatable.",
        _non_empty,
        multiple=True,
        metavar="TAG",
    ),
]


def job_options(for_add: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a click command with every job field option."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for opt in reversed(OPTIONS):
            kwargs: dict[str, Any] = {"help": opt.help, "default": None, "metavar": opt.metavar}
            if opt.choice:
                kwargs["type"] = click.Choice(opt.choice, case_sensitive=False)
            if opt.multiple:
                kwargs["multiple"] = True
                kwargs["default"] = ()
            if for_add and not opt.multiple and not opt.flag_pair:
                default = getattr(DEFAULTS, opt.field)
                if opt.field == "skip_tls_verify":
                    default = not default
                kwargs["help"] += f"  [default: {default if default not in ('', None) else 'none'}]"
            if opt.flag_pair:
                kwargs.pop("metavar")
            name = opt.field.replace("skip_tls_verify", "tls_verify")
            fn = click.option(*opt.flags, name, **kwargs)(fn)
        return fn

    return decorate


def changes_from(given: dict[str, Any]) -> dict[str, Any]:
    """Job field values from the options actually given (None / () = not given)."""
    out: dict[str, Any] = {}
    for opt in OPTIONS:
        name = opt.field.replace("skip_tls_verify", "tls_verify")
        value = given.get(name)
        if value is None or (opt.multiple and value == ()):
            continue
        if opt.choice and isinstance(value, str):
            value = value.upper() if opt.field == "http_method" else value.lower()
        out[opt.field] = opt.convert(value) if opt.convert else value
    return out
