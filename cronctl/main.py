"""cronctl: manage crontrio jobs and runs, and preview cron specs.

Exit codes: 0 ok; 1 not found or refused by the server; 2 invalid input (the
message names the field); 3 no dispatcher reachable; 4 not authenticated or
not allowed (token).

With --json, an error is one JSON object on stderr,
{"error": {"message": ..., "field": ... or null, "exit_code": N}}, and
nothing is printed on stdout: stdout holds JSON only when the command worked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
import grpc
from tabulate import tabulate

from crontrio import __version__
from crontrio.common.clock import now_ms
from crontrio.common.convert import job_from_pb, job_to_pb
from crontrio.common.cron import CronSchedule, validate_timezone
from crontrio.common.errors import ValidationError
from crontrio.common.jobs import validate_job
from crontrio.common.model import Job
from crontrio.common.status import ACTIVE, QUEUED, SKIPPED
from crontrio.common.status import ALL as STATUSES
from crontrio.common.text import OutputEscaper, printable
from crontrio.cronctl import import_cmd, observe, token_cmd, transfer_cmd, user_cmd
from crontrio.cronctl.client import AdminClient, NoServerError, with_default_port
from crontrio.cronctl.job_edit import active_run_of, env_change_summary, env_edit_options, first_record, merge_env
from crontrio.cronctl.job_options import OPTIONS, changes_from, job_options
from crontrio.cronctl.timefmt import duration, iso_utc, parse_instant
from crontrio.protos import crontrio_pb2 as pb

EXIT_FAILED, EXIT_INVALID, EXIT_NO_SERVER = 1, 2, 3
PAGE_SIZE = 1000  # the servers' maximum page of jobs and of runs
DEFAULT_SERVER = "127.0.0.1:5920"
COMMAND_WIDTH = 48


class Ctx:
    def __init__(self, servers: list[str], json_output: bool, token: str = "", ca: str = "") -> None:
        self.client = AdminClient(servers, token=token, ca=ca)
        self.json = json_output


# "field: message", as ValidationError and the servers' INVALID_ARGUMENT spell it.
_FIELD_RE = re.compile(r"([a-z_][a-z0-9_.]*): ")


def _json_mode() -> bool:
    """Whether --json was given, globally or to the running command."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return False
    obj = ctx.find_object(Ctx)
    return bool((obj is not None and obj.json) or ctx.params.get("json_output"))


def fail(message: str, code: int) -> None:
    if _json_mode():
        field = _FIELD_RE.match(message)
        error = {"message": message, "field": field.group(1) if field else None, "exit_code": code}
        click.echo(json.dumps({"error": error}, sort_keys=True), err=True)
    else:
        click.echo(f"error: {printable(message)}", err=True)
    sys.exit(code)


def table(rows: list[list[Any]], **options: Any) -> str:
    """tabulate() with control characters in every cell escaped: names,
    commands and errors come from users, and an escape sequence in one must
    not reach the operator's terminal (--json output stays exact)."""
    return tabulate([[printable(c) if isinstance(c, str) else c for c in row] for row in rows], **options)


@contextmanager
def server_errors() -> Iterator[None]:
    """Turn gRPC errors into messages and the documented exit codes."""
    try:
        yield
    except NoServerError as exc:
        fail(f"no dispatcher reachable ({exc}); is it running? (--server / CRONTRIO_SERVER)", EXIT_NO_SERVER)
    except click.ClickException as exc:  # refused token (exit 4), unreadable --ca (exit 2)
        fail(exc.format_message(), exc.exit_code)
    except grpc.RpcError as exc:
        code = exc.code()
        if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS):
            fail(exc.details() or code.name, EXIT_INVALID)
        fail(exc.details() or code.name, EXIT_FAILED)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "json_output", is_flag=True, help="Print JSON for scripts instead of a table.")(fn)


def wants_json(ctx: click.Context, local: bool) -> bool:
    return local or ctx.find_object(Ctx).json  # type: ignore[union-attr]


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="cronctl", message="%(prog)s %(version)s")
@click.option(
    "--server",
    "servers",
    multiple=True,
    metavar="HOST:PORT",
    help=f"Dispatcher to talk to (port 5920 if none given); repeat for failover (a server that does not connect within "
    f"2 s is passed over). Default: $CRONTRIO_SERVER (comma-separated) or {DEFAULT_SERVER}.",
)
@click.option(
    "--etcd",
    "etcd_endpoints",
    default=lambda: os.environ.get("CRONTRIO_ETCD", ""),
    metavar="HOST:PORT[,...]",
    help="Find live dispatchers in etcd (distributed mode) when no --server is given. Default: $CRONTRIO_ETCD.",
)
@click.option("--etcd-prefix", default="/crontrio", show_default=True, help="The [etcd] prefix the services use.")
@click.option(
    "--token",
    default="",
    envvar="CRONTRIO_TOKEN",
    show_envvar=True,
    metavar="TOKEN",
    help="Bearer token for the admin API (see `cronctl token new`); needed when the dispatcher has [tokens].",
)
@click.option(
    "--ca",
    default="",
    envvar="CRONTRIO_CA",
    show_envvar=True,
    metavar="FILE",
    help="CA certificate (PEM): talk TLS to the dispatcher and verify it ([tls] admin = true).",
)
@click.option("--json", "json_output", is_flag=True, help="JSON output for every command (errors: JSON on stderr).")
@click.pass_context
def cli(
    ctx: click.Context, servers: tuple[str, ...], etcd_endpoints: str, etcd_prefix: str, token: str, ca: str, json_output: bool
) -> None:
    """Manage crontrio: add and list jobs, inspect runs, preview cron specs.

    \b
    Examples:
      cronctl job add --name backup --spec '30 2 * * *' --tz Europe/Berlin --command '/usr/local/bin/backup.sh'
      cronctl job add --name ping --spec '@every 30s' --type http --command https://example.com/health
      cronctl run list --job backup
      cronctl cron next '0 9 * * MON-FRI' --tz America/New_York --count 3

    Exit codes: 0 ok, 1 not found / refused, 2 invalid input (names the field), 3 no dispatcher reachable,
    4 not authenticated or not permitted (token missing, unknown, or its role too low).
    With --json an error is {"error": {"message", "field", "exit_code"}} on stderr and stdout stays empty.
    """
    chosen = list(servers) or [s.strip() for s in os.environ.get("CRONTRIO_SERVER", "").split(",") if s.strip()]
    chosen = [with_default_port(s) for s in chosen]  # a bare host means the dispatcher's port, 5920
    if not chosen and etcd_endpoints and ctx.invoked_subcommand not in ("cron", "token"):
        endpoints = [e.strip() for e in etcd_endpoints.split(",") if e.strip()]
        chosen = discover_dispatchers(endpoints, etcd_prefix)
        if not chosen:
            fail(f"no dispatcher registered in etcd at {etcd_endpoints} (prefix {etcd_prefix})", EXIT_NO_SERVER)
    ctx.obj = Ctx(chosen or [DEFAULT_SERVER], json_output, token=token, ca=ca)


def discover_dispatchers(endpoints: list[str], prefix: str) -> list[str]:
    """Addresses of the dispatchers registered in etcd right now."""
    from crontrio.common.registry.dispatcher_watch import DispatcherWatcher

    async def read() -> list[str]:
        watcher = DispatcherWatcher(endpoints, prefix)
        await watcher.start(wait=5.0)
        try:
            return [d.address for d in watcher.live()]
        finally:
            await watcher.close()

    return asyncio.run(read())


# ----------------------------------------------------------------------- jobs


@cli.group()
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


def _short(text: str, width: int = COMMAND_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _paged(ctx: click.Context, method: str, request: Any, items: str, limit: int = 0) -> list[Any]:
    """Follow next_page_token until `limit` items (0 = all of them) are had."""
    out: list[Any] = []
    with server_errors():
        while True:
            if limit:
                request.limit = min(PAGE_SIZE, limit - len(out))
            reply = ctx.obj.client.call(lambda s: getattr(s, method), request)
            out.extend(getattr(reply, items))
            if not reply.next_page_token or (limit and len(out) >= limit):
                return out
            request.page_token = reply.next_page_token


@job.command("list")
@click.option("--prefix", default="", metavar="TEXT", help="Only jobs whose name starts with this.")
@click.option("--tag", default="", metavar="TAG", help="Only jobs carrying this tag.")
@click.option("--owner", default="", metavar="WHO", help="Only jobs owned by exactly this owner.")
@click.option("--limit", default=0, type=click.IntRange(min=0), help="At most this many jobs, by id.  [default: 0 = all]")
@json_option
@click.pass_context
def job_list(ctx: click.Context, prefix: str, tag: str, owner: str, limit: int, json_output: bool) -> None:
    """List jobs with their next fire time (UTC), fetched page by page."""
    jobs = _paged(ctx, "ListJobs", pb.ListJobsRequest(name_prefix=prefix, tag=tag, owner=owner), "jobs", limit)
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
            _short(j.command),
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


def _is_job_id(text: str) -> bool:
    """An id, as opposed to a name: ASCII digits (str.isdigit() also takes
    "²", which int() refuses) within int64, which the message can carry."""
    return text.isascii() and text.isdigit() and int(text) < 2**63


def _job_ref(name_or_id: str) -> pb.JobRef:
    return pb.JobRef(id=int(name_or_id)) if _is_job_id(name_or_id) else pb.JobRef(name=name_or_id)


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
            j.name for j in _paged(ctx, "ListJobs", pb.ListJobsRequest(), "jobs") if any(d.job == target.name for d in j.after)
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


# ----------------------------------------------------------------------- runs


@cli.group()
def run() -> None:
    """Inspect runs."""


def _run_dict(r: pb.Run, with_output: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "run_id": r.run_id,
        "job_id": r.job_id,
        "job": r.job_name,
        "attempt": r.attempt,
        "status": r.status,
        # None for a run that never ran (skipped, missed, pending...): its 0 is no exit code.
        "exit_code": r.exit_code if _ran(r) else None,
        "executor": r.executor,
        "host": r.host,
        "dispatcher": r.dispatcher,
        "pid": r.pid,
        "scheduled": iso_utc(r.scheduled_ms),
        "started": iso_utc(r.started_ms) or None,
        "finished": iso_utc(r.finished_ms) or None,
        "duration_seconds": round((r.finished_ms - r.started_ms) / 1000, 3) if r.started_ms and r.finished_ms else None,
        "error": r.error,
        "trigger": r.trigger,
        # When it was reported past its timeout (timeout_action alert; not killed).
        "overran": iso_utc(r.overrun_ms) or None,
        "shard": f"{r.shard + 1}/{r.shard_total}" if r.shard_total else None,
    }
    if with_output:
        data["output"] = r.output.decode("utf-8", errors="replace")
        data["output_truncated"] = r.output_truncated
    return data


def _ran(r: pb.Run) -> bool:
    """The run's process ran to a known end, so its exit code means something
    (a skipped, missed, pending or lost run has none: its 0 is no exit code)."""
    return bool(r.started_ms and r.finished_ms) and r.status != "lost"


@run.command("list")
@click.option("--job", "job_name", default="", metavar="NAME", help="Only this job's runs.")
@click.option(
    "--status", "statuses", multiple=True, type=click.Choice(sorted(STATUSES)), help="Only runs with this status (repeatable)."
)
@click.option(
    "--since", default="", metavar="TIME", help="Only runs scheduled at or after this ISO 8601 time (UTC without an offset)."
)
@click.option(
    "--until", default="", metavar="TIME", help="Only runs scheduled before this ISO 8601 time (UTC without an offset)."
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="How many, newest first.")
@click.option("--all", "everything", is_flag=True, help="Every matching run (pages through them all); overrides --limit.")
@click.option("--running", is_flag=True, help="Only runs going on now (pending or running); same as --status for both.")
@json_option
@click.pass_context
def run_list(
    ctx: click.Context,
    job_name: str,
    statuses: tuple[str, ...],
    running: bool,
    since: str,
    until: str,
    limit: int,
    everything: bool,
    json_output: bool,
) -> None:
    """List runs, newest first (summaries: `run show` has the output)."""
    if running:
        statuses = tuple(sorted({*statuses, *ACTIVE}))
    request = pb.ListRunsRequest(statuses=statuses)
    try:
        request.since_ms = parse_instant(since, "UTC", "since") if since else 0
        request.until_ms = parse_instant(until, "UTC", "until") if until else 0
    except ValidationError as exc:
        fail(str(exc), EXIT_INVALID)
    if request.since_ms and request.until_ms and request.until_ms <= request.since_ms:
        fail("until: must be after --since", EXIT_INVALID)
    if _is_job_id(job_name):
        request.job_id = int(job_name)
    else:
        request.job_name = job_name
    runs = _paged(ctx, "ListRuns", request, "runs", 0 if everything else limit)
    if wants_json(ctx, json_output):
        emit_json([_run_dict(r, with_output=False) for r in runs])
        return
    if not runs:
        click.echo("no runs going on" if running else ("no runs yet" if not (statuses or since or until) else "no runs match"))
        return
    rows = [
        [
            r.run_id,
            r.job_name,
            r.attempt,
            f"{r.status} (overran)" if r.overrun_ms else r.status,
            r.exit_code if _ran(r) else "",
            iso_utc(r.scheduled_ms),
            duration(r.started_ms, r.finished_ms),
            r.executor,
            _short(r.error, 40),
        ]
        for r in runs
    ]
    click.echo(table(rows, headers=["RUN", "JOB", "TRY", "STATUS", "EXIT", "SCHEDULED (UTC)", "TOOK", "EXECUTOR", "ERROR"]))


@run.command("show")
@click.argument("run_id")
@json_option
@click.pass_context
def run_show(ctx: click.Context, run_id: str, json_output: bool) -> None:
    """Show one run: status, exit code, executor, times and the output tail."""
    with server_errors():
        r = ctx.obj.client.call(lambda s: s.GetRun, pb.RunRef(run_id=run_id))
    data = _run_dict(r, with_output=True)
    if wants_json(ctx, json_output):
        emit_json(data)
        return
    data.pop("output")  # shown below, escaped, from the raw bytes
    truncated = data.pop("output_truncated")
    click.echo(table([[k, "" if v is None else v] for k, v in data.items()], tablefmt="plain"))
    click.echo(f"--- output{' (last part only)' if truncated else ''} ---")
    shown = OutputEscaper().feed(r.output, final=True)  # lines and tabs kept, other controls escaped
    click.echo(shown, nl=not shown.endswith("\n"))


@run.command("kill")
@click.argument("run_id")
@json_option
@click.pass_context
def run_kill(ctx: click.Context, run_id: str, json_output: bool) -> None:
    """Kill a running run: its executor sends TERM to the process group, then KILL after a grace period."""
    with server_errors():
        reply = ctx.obj.client.call(lambda s: s.KillRun, pb.RunRef(run_id=run_id))
    if wants_json(ctx, json_output):
        emit_json({"run_id": run_id, "killed": reply.killed, "reason": reply.reason})
    elif reply.killed:
        click.echo(f"run {printable(run_id)} killed")
    else:
        fail(f"run {run_id} not killed: {reply.reason}", EXIT_FAILED)


# ----------------------------------------------------------------------- cron


@cli.group()
def cron() -> None:
    """Work with cron specs (offline: no server needed)."""


@cron.command("next")
@click.argument("spec")
@click.option("--tz", "timezone", default="UTC", show_default=True, help="IANA time zone the spec is read in.")
@click.option(
    "--after", default="", metavar="ISO8601", help="Start after this instant (default now); without an offset it is read in --tz."
)
@click.option("--count", default=5, show_default=True, type=click.IntRange(1, 1000), help="How many fire times.")
@json_option
@click.pass_context
def cron_next(ctx: click.Context, spec: str, timezone: str, after: str, count: int, json_output: bool) -> None:
    """Print the next fire instants of SPEC as ISO 8601 UTC, one a line.

    \b
    cronctl cron next '30 2 * * *' --tz America/New_York --after 2026-03-07T12:00:00Z --count 3
    cronctl cron next '@every 90m' --json
    """
    try:
        zone = validate_timezone(timezone)
        schedule = CronSchedule.parse(spec, zone, hash_key="preview")
        after_ms = parse_instant(after, zone) if after else now_ms()
        try:
            fire_ms = schedule.next_n(after_ms, count)
        except (ValueError, OverflowError) as exc:  # e.g. before 1900: the cron math does not reach it
            raise ValidationError("after", str(exc)) from None
    except ValidationError as exc:
        fail(str(exc), EXIT_INVALID)
    instants = [iso_utc(ms) for ms in fire_ms]
    if wants_json(ctx, json_output):
        click.echo(json.dumps(instants))
    else:
        for instant in instants:
            click.echo(instant)


cli.add_command(token_cmd.token)
observe.register(cli, run, sys.modules[__name__])
import_cmd.register(cli, sys.modules[__name__])
user_cmd.register(cli, sys.modules[__name__])
transfer_cmd.register(job, sys.modules[__name__])


def main() -> None:
    cli(prog_name="cronctl")


if __name__ == "__main__":
    main()
