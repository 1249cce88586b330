"""The job form's fields: every field `cronctl job add` has, in groups, and
the conversion between form text and a Job message.

The common case (name, spec, zone, command, type) is always shown; the rest
sits in folded groups that open by themselves when they hold a value or an
error. Conversion errors name the field like the admin API does, so both
kinds are shown next to the field they are about. The admin API still
validates everything: the console never decides what is a valid job.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from crontrio.common.model import (
    ALERT_CHANNELS,
    DEPENDENCY_CONDITIONS,
    HTTP_METHODS,
    KEYWORD_ACTIONS,
    MISFIRE_POLICIES,
    NOTIFY_POLICIES,
    OVERLAP_POLICIES,
    ROUTE_STRATEGIES,
    TASK_TYPES,
)
from crontrio.protos import crontrio_pb2 as pb

REDACTED = "<redacted>"  # as the admin API writes a secret value; sent back, it keeps the stored one


@dataclass(frozen=True)
class Field:
    name: str  # the Job field
    label: str
    kind: str = "text"  # text, textarea, number, int, select, check, lines, pairs, ints, deps
    choices: tuple[str, ...] = ()
    hint: str = ""
    sep: str = "="  # pairs: KEY=VALUE (env) or Name: value (headers)


@dataclass(frozen=True)
class Group:
    key: str
    title: str  # "" = the always-shown first group
    fields: tuple[Field, ...]


GROUPS: tuple[Group, ...] = (
    Group(
        "main",
        "",
        (
            Field("name", "Name", hint="Letters, digits, '.', '_' and '-'."),
            Field(
                "spec",
                "Spec",
                hint="5 fields (min hour day month weekday), 6 with seconds, @daily, @every 30s, H for a hashed value.",
            ),
            Field("timezone", "Time zone", hint="IANA zone, e.g. Europe/Berlin; empty = UTC."),
            Field("type", "Type", "select", TASK_TYPES),
            Field("command", "Command", "textarea", hint="Shell command line, or the URL of an http job."),
            Field("paused", "Paused (does not fire until resumed)", "check"),
        ),
    ),
    Group(
        "about",
        "Description, owner and tags",
        (
            Field("description", "Description", "textarea", hint="What the job is for (at most 1,024 characters)."),
            Field("owner", "Owner", hint="Who answers for the job: a person or team, one word."),
            Field("tags", "Tags", "lines", hint="One a line: lower-case labels to find the job by."),
        ),
    ),
    Group(
        "retries",
        "Timeout and retries",
        (
            Field("timeout_seconds", "Timeout (seconds)", "number", hint="0 = no limit."),
            Field("retries", "Retries", "int"),
            Field("retry_interval_seconds", "Retry interval (seconds)", "number"),
            Field("retry_backoff", "Retry backoff (multiplier)", "number", hint="1 = a fixed delay."),
            Field("retry_max_interval_seconds", "Longest retry interval (seconds)", "number", hint="0 = no cap."),
            Field("retry_jitter", "Retry jitter (0-1)", "number"),
        ),
    ),
    Group(
        "overlap",
        "Overlap and misfires",
        (
            Field("overlap_policy", "Overlap", "select", OVERLAP_POLICIES),
            Field("misfire_policy", "Misfire", "select", MISFIRE_POLICIES),
            Field("catch_up_window_seconds", "Catch-up window (seconds)", "number"),
        ),
    ),
    Group(
        "routing",
        "Where it runs",
        (
            Field("target", "Target", hint="An executor address, group:NAME, or empty for any."),
            Field("route_strategy", "Route", "select", ROUTE_STRATEGIES),
            Field("workdir", "Working directory"),
            Field("run_as_user", "Run as user"),
        ),
    ),
    Group("env", "Environment", (Field("env", "Environment", "pairs", hint="One KEY=VALUE a line."),)),
    Group(
        "http",
        "HTTP options",
        (
            Field("http_method", "HTTP method", "select", HTTP_METHODS),
            Field("http_headers", "HTTP headers", "pairs", hint="One 'Name: value' a line.", sep=":"),
            Field("http_body", "HTTP body", "textarea"),
            Field("expected_statuses", "Expected statuses", "ints", hint="e.g. 200 204; empty = any 2xx."),
            Field("follow_redirects", "Follow redirects", "check"),
            Field("skip_tls_verify", "Skip TLS verification", "check"),
        ),
    ),
    Group(
        "notify",
        "Keywords and notifications",
        (
            Field("keywords", "Keywords", "lines", hint="One a line: a run whose output contains one is flagged."),
            Field("keyword_action", "Keyword action", "select", KEYWORD_ACTIONS),
            Field("notify_policy", "Notify", "select", NOTIFY_POLICIES),
            Field("notify_channels", "Channels", "lines", ALERT_CHANNELS, hint="One a line; empty = every channel."),
            Field("notify_emails", "E-mail recipients", "lines"),
            Field("notify_phones", "SMS recipients", "lines"),
        ),
    ),
    Group(
        "after",
        "Dependencies",
        (
            Field(
                "after",
                "Run after",
                "deps",
                DEPENDENCY_CONDITIONS,
                hint="One upstream job a line: NAME or NAME:" + "|".join(DEPENDENCY_CONDITIONS) + ".",
            ),
        ),
    ),
)
FIELDS = {f.name: f for g in GROUPS for f in g.fields}
# The admin API's names for some fields (as cronctl's options) -> the Job field.
ALIASES = {
    "timeout": "timeout_seconds",
    "retry_interval": "retry_interval_seconds",
    "retry_max_interval": "retry_max_interval_seconds",
    "catch_up_window": "catch_up_window_seconds",
    "overlap": "overlap_policy",
    "misfire": "misfire_policy",
    "route": "route_strategy",
    "notify": "notify_policy",
    "method": "http_method",
    "headers": "http_headers",
    "body": "http_body",
    "user": "run_as_user",
    "statuses": "expected_statuses",
}
_FIELD_OF_MESSAGE = re.compile(r"^([A-Za-z_]+)")


def field_of(details: str) -> str:
    """The form field an admin API message ("spec: ...", "env[0]: ...") is about; "" if none."""
    head, found, _ = details.partition(": ")
    match = _FIELD_OF_MESSAGE.match(head) if found else None
    if not match:
        return ""
    name = ALIASES.get(match.group(1), match.group(1))
    return name if name in FIELDS else ""


def _number(text: str, whole: bool) -> float | int:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    if whole:
        if value != int(value):
            raise ValueError(text)
        return int(value)
    return value


def job_from_form(form: Any) -> tuple[pb.Job, dict[str, str]]:
    """The Job the form describes, and the fields it could not read (name -> why)."""
    job = pb.Job()
    errors: dict[str, str] = {}
    for f in FIELDS.values():
        raw = str(form.get(f.name, ""))
        text = raw.strip()
        if f.kind in ("text", "select"):
            setattr(job, f.name, text)
        elif f.kind == "textarea":
            setattr(job, f.name, raw.replace("\r\n", "\n").strip("\n") if f.name != "command" else raw.strip())
        elif f.kind in ("number", "int"):
            try:
                setattr(job, f.name, _number(text, f.kind == "int") if text else 0)
            except ValueError:
                errors[f.name] = f"expected {'a whole' if f.kind == 'int' else 'a'} number, got {text!r}"
        elif f.kind == "check":
            setattr(job, f.name, bool(form.get(f.name)))
        elif f.kind == "lines":
            getattr(job, f.name).extend(line.strip() for line in re.split(r"[\r\n]+", raw) if line.strip())
        elif f.kind == "ints":
            try:
                getattr(job, f.name).extend(int(part) for part in re.split(r"[\s,]+", text) if part)
            except ValueError:
                errors[f.name] = f"expected whole numbers separated by spaces, got {text!r}"
        elif f.kind == "pairs":
            for number, line in enumerate(raw.splitlines(), 1):
                if not line.strip():
                    continue
                key, found, value = line.partition(f.sep)
                if not found or not key.strip():
                    example = "KEY=VALUE" if f.sep == "=" else "Name: value"
                    errors[f.name] = f"line {number}: expected {example}, got {line.strip()!r}"
                    break
                getattr(job, f.name)[key.strip()] = value.strip() if f.sep == ":" else value.rstrip("\r")
        elif f.kind == "deps":
            for line in re.split(r"[\r\n]+", raw):
                if line.strip():
                    name, _, when = line.strip().partition(":")
                    job.after.append(pb.JobDependency(job=name.strip(), when=when.strip()))
    return job, errors


def form_from_job(job: pb.Job, clone: bool = False) -> dict[str, str]:
    """The form's text for a job; a clone gets no secret values (the API never reveals them here)."""
    values: dict[str, str] = {}
    for f in FIELDS.values():
        value = getattr(job, f.name)
        if f.kind in ("number", "int"):
            values[f.name] = f"{value:g}" if value else ""
        elif f.kind == "check":
            values[f.name] = "on" if value else ""
        elif f.kind in ("lines",):
            values[f.name] = "\n".join(value)
        elif f.kind == "ints":
            values[f.name] = " ".join(str(v) for v in value)
        elif f.kind == "pairs":
            joiner = "=" if f.sep == "=" else ": "
            values[f.name] = "\n".join(f"{k}{joiner}{'' if clone and v == REDACTED else v}" for k, v in sorted(value.items()))
        elif f.kind == "deps":
            values[f.name] = "\n".join(f"{d.job}:{d.when}" if d.when else d.job for d in value)
        else:
            values[f.name] = str(value)
    return values


def _defaults() -> dict[str, str]:
    from crontrio.common.convert import job_to_pb
    from crontrio.common.model import Job

    return form_from_job(job_to_pb(Job(name="", spec="", command=""), 0))


DEFAULTS = _defaults()


def open_groups(values: dict[str, str], errors: dict[str, str]) -> set[str]:
    """Groups to show unfolded: those with an error or a value other than the default."""
    shown = set()
    for group in GROUPS:
        for f in group.fields:
            if f.name in errors or (values.get(f.name, "") not in ("", DEFAULTS.get(f.name, "")) and group.key != "main"):
                shown.add(group.key)
    return shown
