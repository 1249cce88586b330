"""cronctl job: add, edit, pause, resume, run now, list, show and delete jobs."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from crontrio.common.convert import job_from_pb, job_to_pb
from crontrio.common.errors import ValidationError
from crontrio.common.jobs import validate_job
from crontrio.common.model import Job
from crontrio.common.status import QUEUED, SKIPPED
from crontrio.common.text import printable
from crontrio.cronctl.job_edit import active_run_of, env_change_summary, env_edit_options, first_record, merge_env
from crontrio.cronctl.job_options import OPTIONS, changes_from, job_options
from crontrio.cronctl.output import (
    EXIT_FAILED,
    EXIT_INVALID,
    emit_json,
    fail,
    is_job_id,
    json_option,
    paged,
    server_errors,
    short,
    table,
    wants_json,
)
from crontrio.cronctl.timefmt import iso_utc
from crontrio.protos import crontrio_pb2 as pb


@click.group()
def job() -> None:
    """Add, list, show and delete jobs."""


@job.command("add")
@click.option("--name", required=True, help="Unique job name: letters, digits, '.', '_', '-'.")
@job_options(for_add=True)
@click.option("--paused", is_flag=True, help="Store the job paused (it does not fire until resumed).")
@json_option
@click.pass_context
def job_add(ctx: click.Context, name: str, paused: bool, json_output: bool, **given: Any) -> None:
    """Validate and store a new job (--spec and --command are required).

    Nothing is stored if any field is invalid; the error names the field.
    """
    try:
        changes = changes_from(given)
        for required in ("spec", "command"):
            if required not in changes and not (required == "spec" and changes.get("after")):
                raise ValidationError(required, f"--{required} is required")
        job = validate_job(dataclasses.replace(Job(name=name, spec="", command="", enabled=not paused), **changes))
    except ValidationError as exc:
        fail(str(exc), EXIT_INVALID)
    with server_errors():
        stored = ctx.obj.client.call(lambda s: s.CreateJob, job_to_pb(job))
        _warn_if_no_executor(ctx, stored.target)
    if wants_json(ctx, json_output):
        emit_json(_job_dict(stored))
    else:
        next_fire = iso_utc(stored.next_fire_ms) or ("after its upstreams" if stored.after else "never")
        click.echo(f"job {printable(stored.name)} added (id {stored.id}); next run {next_fire}")


@job.command("edit")
@click.argument("job_name", metavar="NAME")
@click.option("--rename", default=None, metavar="NEW_NAME", help="Give the job a new name.")
@job_options(for_add=False)
@env_edit_options
@json_option
@click.pass_context
def job_edit(
    ctx: click.Context,
    job_name: str,
    rename: str | None,
    env_add: tuple[str, ...],
    env_remove: tuple[str, ...],
    json_output: bool,
    **given: Any,
) -> None:
    """Change some fields of a job; the others keep their values.

    --env replaces the job's whole environment (give it once with '' to
    clear it). A repeatable option (--env, --header, --keyword, --after, --expect-status,
    --tag) replaces the whole list; give it once with '' to clear it.
    --env-add and --env-remove change single variables and keep the others
    (secret values included, unseen).
    """
    try:
        changes = changes_from(given)
        for opt in OPTIONS:  # an explicit '' for a list clears it
            name = opt.field.replace("skip_tls_verify", "tls_verify")
            if opt.multiple and given.get(name) == ("",):
                changes[opt.field] = opt.convert(()) if opt.convert else ()
    except ValidationError as exc:
        fail(str(exc), EXIT_INVALID)
    if rename:
        changes["name"] = rename
    if "env" in changes and (env_add or env_remove):
        fail("env: --env replaces the whole environment; use it or --env-add/--env-remove, not both", EXIT_INVALID)
    if not changes and not env_add and not env_remove:
        fail("nothing to change: give at least one option (see cronctl job edit --help)", EXIT_INVALID)
    with server_errors():
        current = job_from_pb(ctx.obj.client.call(lambda s: s.GetJob, _job_ref(job_name)))
    try:
        if env_add or env_remove:
            # Values of the other keys come back "<redacted>": sent as they
            # are, the dispatcher keeps the stored values.
            changes["env"] = merge_env(current.env, env_add, env_remove)
        job = validate_job(dataclasses.replace(current, **changes))
    except ValidationError as exc:
        fail(str(exc), EXIT_INVALID)
    with server_errors():
        stored = ctx.obj.client.call(lambda s: s.UpdateJob, job_to_pb(job))
        if "target" in changes and changes["target"] != current.target:
            _warn_if_no_executor(ctx, stored.target)
    if wants_json(ctx, json_output):
        emit_json(_job_dict(stored))
    else:
        if "env" in changes:
            click.echo(env_change_summary(current.env, changes["env"], merged=bool(env_add or env_remove)))
        click.echo(f"job {printable(stored.name)} updated; next run {iso_utc(stored.next_fire_ms) or 'none scheduled'}")


def _warn_if_no_executor(ctx: click.Context, target: str) -> None:
    """Warn (stderr) when no live executor matches the job's target: it would
    fail at every firing until one registers. The dispatcher matches, with
    its [machine] groups; an older one ignores the filter and lists all."""
    if not target:
        return
    reply = ctx.obj.client.call(lambda s: s.ListExecutors, pb.ListExecutorsRequest(target=target))
    if not reply.executors:
        click.echo(
            f"warning: target {printable(target)!r} matches no live executor now; its runs fail until one does"
            " (see `cronctl executor list`)",
            err=True,
        )


def _job_state_command(action: str, method: str, doc: str) -> None:
    @job.command(action, help=doc)
    @click.argument("job_name", metavar="NAME")
    @json_option
    @click.pass_context
    def command(ctx: click.Context, job_name: str, json_output: bool) -> None:
        with server_errors():
            stored = ctx.obj.client.call(lambda s: getattr(s, method), _job_ref(job_name))
        if wants_json(ctx, json_output):
            emit_json(_job_dict(stored))
        else:
            name = printable(stored.name)
            click.echo(f"job {name} {action}d" if action.endswith("e") else f"job {name} {action}ed")


_job_state_command("pause", "PauseJob", "Pause a job: it keeps its definition and history but does not fire.")
_job_state_command("resume", "ResumeJob", "Resume a paused job.")


@job.command("run")
@click.argument("job_name", metavar="NAME")
@json_option
@click.pass_context
def job_run(ctx: click.Context, job_name: str, json_output: bool) -> None:
    """Run a job now, outside its schedule (its overlap policy applies).

    Exits 1 when the overlap policy skipped the run (the previous run still
    goes), naming the run to follow instead.
    """
    with server_errors():
        reply = ctx.obj.client.call(lambda s: s.RunJob, _job_ref(job_name))
        first = first_record(ctx.obj.client, reply.first_run_id)
        active = ""
        if first is not None and first.status in (SKIPPED, QUEUED):
            active = active_run_of(ctx.obj.client, first.job_id)
    state = first.status if first is not None else "started"
    follow = f"cronctl run tail -f {active}" if active else "cronctl run list --running"
    if state == SKIPPED:  # an error: with --json, as JSON on stderr like every error
        assert first is not None
        fail(f"job {job_name} did not run: {first.error} (overlap policy skip); follow that run with `{follow}`", EXIT_FAILED)
    if wants_json(ctx, json_output):
        emit_json(
            {
                "run_id": reply.first_run_id,
                "scheduled": iso_utc(reply.scheduled_ms),
                "status": state,  # pending, running, queued; "started" when not recorded within 5 s
                "running_run_id": active or None,
            }
        )
    elif state == QUEUED:
        click.echo(f"queued: run {reply.first_run_id} waits for the running one (follow that with `{follow}`)")
    else:
        click.echo(f"started: run {reply.first_run_id} (follow it with `cronctl run tail -f {reply.first_run_id}`)")


def _job_dict(msg: pb.Job) -> dict[str, Any]:
    job = job_from_pb(msg)
    return {
        "id": job.id,
        "name": job.name,
        "spec": job.spec,
        "timezone": job.timezone,
        "type": job.type,
        "command": job.command,
        "http_method": job.http_method,
        "http_headers": job.http_headers,
        "http_body": job.http_body,
        "expected_statuses": list(job.expected_statuses),
        "timeout_seconds": job.timeout_seconds,
        "timeout_action": job.timeout_action,
        "retries": job.retries,
        "retry_interval_seconds": job.retry_interval_seconds,
        "enabled": job.enabled,
        "target": job.target,
        "workdir": job.workdir,
        "env": job.env,
        "run_as_user": job.run_as_user,
        "overlap_policy": job.overlap_policy,
        "misfire_policy": job.misfire_policy,
        "catch_up_window_seconds": job.catch_up_window_seconds,
        "retry_backoff": job.retry_backoff,
        "retry_max_interval_seconds": job.retry_max_interval_seconds,
        "retry_jitter": job.retry_jitter,
        "route_strategy": job.route_strategy,
        "follow_redirects": job.follow_redirects,
        "tls_verify": not job.skip_tls_verify,
        "keywords": list(job.keywords),
        "keyword_action": job.keyword_action,
        "after": [f"{d.job}:{d.when}" for d in job.after],
        "notify_policy": job.notify_policy,
        "notify_channels": list(job.notify_channels),
        "notify_emails": list(job.notify_emails),
        "notify_phones": list(job.notify_phones),
        "description": job.description,
        "owner": job.owner,
        "tags": list(job.tags),
        "created": iso_utc(job.created_ms),
        "updated": iso_utc(job.updated_ms),
        "next_fire": iso_utc(msg.next_fire_ms) or None,
        "invalid_reason": msg.invalid_reason or None,
        "secrets_redacted": msg.secrets_redacted,
    }


@job.command("list")
@click.option("--prefix", default="", metavar="TEXT", help="Only jobs whose name starts with this.")
@click.option("--tag", default="", metavar="TAG", help="Only jobs carrying this tag.")
@click.option("--owner", default="", metavar="WHO", help="Only jobs owned by exactly this owner.")
@click.option("--limit", default=0, type=click.IntRange(min=0), help="At most this many jobs, by id.  [default: 0 = all]")
@json_option
@click.pass_context
def job_list(ctx: click.Context, prefix: str, tag: str, owner: str, limit: int, json_output: bool) -> None:
    """List jobs with their next fire time (UTC), fetched page by page."""
    jobs = paged(ctx, "ListJobs", pb.ListJobsRequest(name_prefix=prefix, tag=tag, owner=owner), "jobs", limit)
    if wants_json(ctx, json_output):
        emit_json([_job_dict(j) for j in jobs])
        return
    rows = [
        [
            j.id,
            j.name,
            j.spec,
            j.timezone,
            j.type,
            _state(j),
            iso_utc(j.next_fire_ms),
            ",".join(j.tags),
            short(j.command),
        ]
        for j in jobs
    ]
    if not rows and (prefix or tag or owner):
        click.echo("no jobs match")
        return
    if not rows:
        click.echo("no jobs yet: add one with `cronctl job add --name NAME --spec SPEC --command CMD`")
        return
    click.echo(table(rows, headers=["ID", "NAME", "SPEC", "TZ", "TYPE", "STATE", "NEXT (UTC)", "TAGS", "COMMAND"]))
    invalid = [j for j in jobs if j.invalid_reason]
    for j in invalid:  # why, in full (the table has no room for it)
        click.echo(f"invalid: {printable(j.name)} (id {j.id}): {printable(j.invalid_reason)}", err=True)


def _state(j: pb.Job) -> str:
    if j.invalid_reason:
        return "invalid"
    return "paused" if j.paused else ("active" if j.next_fire_ms else "not scheduled")


def _job_ref(name_or_id: str) -> pb.JobRef:
    return pb.JobRef(id=int(name_or_id)) if is_job_id(name_or_id) else pb.JobRef(name=name_or_id)


@job.command("show")
@click.argument("job_name", metavar="NAME")
@click.option("--reveal", is_flag=True, help="Show env and header values in clear (admin tokens only; audited).")
@json_option
@click.pass_context
def job_show(ctx: click.Context, job_name: str, reveal: bool, json_output: bool) -> None:
    """Show every field of one job (by name or id); secret values as <redacted> unless --reveal."""
    ref = _job_ref(job_name)
    ref.reveal = reveal
    with server_errors():
        msg = ctx.obj.client.call(lambda s: s.GetJob, ref)
    data = _job_dict(msg)
    if wants_json(ctx, json_output):
        emit_json(data)
        return
    click.echo(table([[k, _show_value(v)] for k, v in data.items()], tablefmt="plain"))
    if msg.secrets_redacted:
        click.echo("(env and header values are redacted; an admin sees them with --reveal)", err=True)


def _show_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


@job.command("delete")
@click.argument("job_name", metavar="NAME")
@click.option("--force", is_flag=True, help="Delete it even if other jobs run after it (they then never run that way).")
@json_option
@click.pass_context
def job_delete(ctx: click.Context, job_name: str, force: bool, json_output: bool) -> None:
    """Delete a job (by name or id). Its run history is kept.

    A job other jobs depend on (their --after) is kept unless --force.
    """
    with server_errors():
        target = ctx.obj.client.call(lambda s: s.GetJob, _job_ref(job_name))
        dependents = [
            j.name for j in paged(ctx, "ListJobs", pb.ListJobsRequest(), "jobs") if any(d.job == target.name for d in j.after)
        ]
    if dependents:
        names = ", ".join(dependents)
        if not force:
            fail(f"job {target.name} is an upstream of {names} (--after); give --force to delete it anyway", EXIT_FAILED)
        click.echo(f"warning: {names} ran after {printable(target.name)}; those dependencies now name no job", err=True)
    with server_errors():
        reply = ctx.obj.client.call(lambda s: s.DeleteJob, pb.JobRef(id=target.id))
    if wants_json(ctx, json_output):
        emit_json({"deleted": reply.deleted, "job": job_name})
    else:
        click.echo(f"job {printable(job_name)} deleted; its runs are kept")
