"""Secret values of a job (env values, HTTP header values) and their placeholders.

Jobs carry API keys and passwords in env and http_headers values. Replies
show them as REDACTED unless an admin asks for them on purpose; audit copies
never hold them, only whether they changed. A client that reads a job and
sends it back (cronctl job edit, a console form) returns the placeholder:
on UpdateJob a placeholder means "keep the stored value of this key".
"""

from __future__ import annotations

import dataclasses

from crontrio.common.errors import ValidationError
from crontrio.common.model import Job

REDACTED = "<redacted>"
# Audit copies only: this key's value differs between the before and after copy.
REDACTED_CHANGED = "<redacted:changed>"
PLACEHOLDERS = frozenset({REDACTED, REDACTED_CHANGED})
SECRET_FIELDS = ("env", "http_headers")


def has_secrets(job: Job) -> bool:
    return bool(job.env or job.http_headers)


def redact(job: Job) -> Job:
    """The job with every env and header value replaced by REDACTED (names kept)."""
    if not has_secrets(job):
        return job
    return dataclasses.replace(job, env=dict.fromkeys(job.env, REDACTED), http_headers=dict.fromkeys(job.http_headers, REDACTED))


def _marked(values: dict[str, str], other: dict[str, str] | None) -> dict[str, str]:
    return {k: REDACTED if other is not None and other.get(k) == v else REDACTED_CHANGED for k, v in values.items()}


def redact_for_audit(before: Job | None, after: Job | None) -> tuple[Job | None, Job | None]:
    """Copies for the audit log: each value is REDACTED_CHANGED where it was
    added, removed or changed between before and after, REDACTED otherwise."""

    def copy(job: Job | None, other: Job | None) -> Job | None:
        if job is None or not has_secrets(job):
            return job
        return dataclasses.replace(
            job,
            env=_marked(job.env, other.env if other else None),
            http_headers=_marked(job.http_headers, other.http_headers if other else None),
        )

    return copy(before, after), copy(after, before)


def keep_stored(job: Job, stored: Job | None) -> Job:
    """`job` with each placeholder value replaced by the stored value of its key.

    A placeholder for a key the stored job lacks (or on a new job) is refused,
    naming the key: storing "<redacted>" as a password would break the job
    silently.
    """
    if not any(v in PLACEHOLDERS for f in SECRET_FIELDS for v in getattr(job, f).values()):
        return job
    changes: dict[str, dict[str, str]] = {}
    for name in SECRET_FIELDS:
        values = dict(getattr(job, name))
        kept = getattr(stored, name) if stored is not None else {}
        for key, value in values.items():
            if value not in PLACEHOLDERS:
                continue
            if key not in kept:
                what = "this job has no stored value for it" if stored is not None else "a new job has no stored value"
                raise ValidationError(f"{name}.{key}", f"{value!r} stands for a stored secret and {what}; give the value")
            values[key] = kept[key]
        changes[name] = values
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]
