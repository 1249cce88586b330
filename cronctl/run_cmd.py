"""cronctl run: list, show and kill runs (`run tail` and `run watch` are cronctl/observe.py's)."""

from __future__ import annotations

from typing import Any

import click

from crontrio.common.errors import ValidationError
from crontrio.common.status import ACTIVE
from crontrio.common.status import ALL as STATUSES
from crontrio.common.text import OutputEscaper, printable
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
from crontrio.cronctl.timefmt import duration, iso_utc, parse_instant
from crontrio.protos import crontrio_pb2 as pb


@click.group()
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
    if is_job_id(job_name):
        request.job_id = int(job_name)
    else:
        request.job_name = job_name
    runs = paged(ctx, "ListRuns", request, "runs", 0 if everything else limit)
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
            short(r.error, 40),
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
