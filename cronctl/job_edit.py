"""Helpers of `job edit` and `job run` that say exactly what happened:
--env-add/--env-remove (merge) against --env (replace), and the first record
of a manual run (started, queued, or skipped by the overlap policy)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import click
import grpc

from crontrio.common.errors import ValidationError
from crontrio.common.secrets import REDACTED
from crontrio.common.status import ACTIVE
from crontrio.common.text import printable
from crontrio.cronctl.client import AdminClient
from crontrio.protos import crontrio_pb2 as pb

# How long `job run` waits for the dispatcher to record the firing's first
# run (it decides started / queued / skipped as it records it).
FIRST_RECORD_SECONDS = 5.0


def env_edit_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--env-remove",
        multiple=True,
        metavar="KEY",
        help="Remove one environment variable, keeping the others; repeatable.",
    )(fn)
    return click.option(
        "--env-add",
        multiple=True,
        metavar="KEY=VALUE",
        help="Add or change one environment variable, keeping the others (secret values included); repeatable.",
    )(fn)


def merge_env(current: Mapping[str, str], add: tuple[str, ...], remove: tuple[str, ...]) -> dict[str, str]:
    """`current` with `add` set and `remove` gone. The kept values may be
    "<redacted>" (as GetJob shows them): the dispatcher keeps the stored value."""
    env = dict(current)
    for key in remove:
        if key not in env:
            raise ValidationError("env", f"--env-remove {key}: the job has no variable {key!r}")
        del env[key]
    for item in add:
        key, found, value = item.partition("=")
        if not found or not key.strip():
            raise ValidationError("env", f"--env-add: expected KEY=VALUE, got {item!r}")
        if value == REDACTED:
            raise ValidationError("env", f"--env-add {key}: {REDACTED!r} is the placeholder of a hidden value, not a value")
        env[key.strip()] = value
    return env


def env_change_summary(before: Mapping[str, str], sent: Mapping[str, str], merged: bool) -> str:
    """One line saying how env changed: replaced (--env) or merged
    (--env-add/--env-remove). `sent` is the env sent to the dispatcher, where
    a kept secret value is still the "<redacted>" placeholder."""
    added = sorted(set(sent) - set(before))
    removed = sorted(set(before) - set(sent))
    updated = sorted(k for k in set(sent) & set(before) if sent[k] != REDACTED)
    kept = sorted(k for k in set(sent) & set(before) if sent[k] == REDACTED)
    parts = [f"{label} {', '.join(keys)}" for label, keys in (("added", added), ("set", updated), ("removed", removed)) if keys]
    if merged:
        parts.append(f"kept {', '.join(kept)}" if kept else "no other variable")
    how = "merged into the job's environment" if merged else "replaced the job's whole environment"
    return printable(f"env {how}: {'; '.join(parts) or 'now empty'}")


def first_record(client: AdminClient, run_id: str) -> pb.Run | None:
    """The first recorded state of a manual firing's run (None if the
    dispatcher has not recorded it within FIRST_RECORD_SECONDS)."""
    deadline = time.monotonic() + FIRST_RECORD_SECONDS
    while True:
        try:
            return client.call(lambda s: s.GetRun, pb.RunRef(run_id=run_id))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def active_run_of(client: AdminClient, job_id: int) -> str:
    """The id of the job's newest pending or running run ("" if none)."""
    reply = client.call(lambda s: s.ListRuns, pb.ListRunsRequest(job_id=job_id, statuses=sorted(ACTIVE), limit=1))
    return reply.runs[0].run_id if reply.runs else ""
