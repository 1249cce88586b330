"""cronctl import crontab: bring crontab files in as jobs.

The reading is common/crontab_file.py (pure, tested rule by rule); this is
the command around it: read the files, plan against what the dispatcher
already has, then store. Names are derived from the file and the line, so a
second import of the same file finds every job "unchanged" and stores nothing.
Nothing is stored when any line has an error (unless --skip-invalid), when a
job of the same name differs (unless --update), or with --dry-run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import grpc
from tabulate import tabulate

from crontrio.common.convert import job_from_pb, job_to_pb
from crontrio.common.cron import validate_timezone
from crontrio.common.crontab_file import (
    DEFAULT_STEM,
    HASH_CHARS,
    ImportedJob,
    ImportOptions,
    Problem,
    convert,
    merged,
    same_job,
    stem_of,
)
from crontrio.common.errors import ValidationError
from crontrio.common.model import Job
from crontrio.protos import crontrio_pb2 as pb

CREATE, UPDATE, UNCHANGED, CONFLICT = "create", "update", "unchanged", "conflict"
# Not stored because of errors elsewhere in the input; INVALID: refused by the dispatcher.
BLOCKED, INVALID = "blocked", "invalid"
# A job an earlier import of the file made from a line that is gone (edited
# or removed): it would still fire. --prune deletes it.
STALE, DELETE = "stale", "delete"
ACTIONS = (CREATE, UPDATE, UNCHANGED, CONFLICT, BLOCKED, STALE, DELETE)
COMMAND_WIDTH = 40


@dataclass
class Planned:
    source: str  # file name ("-" = stdin)
    item: ImportedJob
    action: str = CREATE
    stored: Job | None = None


def local_timezone() -> str:
    """The IANA zone of this machine (what cron reads a crontab in), or UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    with contextlib.suppress(OSError):
        target = os.readlink("/etc/localtime")
        candidates.append(target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "")
    for name in candidates:
        if name:
            try:
                return validate_timezone(name)
            except ValidationError:
                continue
    return "UTC"


def _read(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {source!r}: {getattr(exc, 'strerror', None) or exc}", param_hint="FILE") from None


def _where(source: str, problem: Problem) -> str:
    name = "stdin" if source == "-" else source
    return f"{name}: {problem}" if problem.line else f"{name}: {problem.message}"


def _row(p: Planned) -> dict[str, Any]:
    job = p.item.job
    return {
        "file": "-" if p.source == "-" else p.source,
        "line": p.item.line,
        "entry": p.item.text,
        "name": job.name,
        "action": p.action,
        "spec": job.spec,
        "timezone": job.timezone,
        "user": job.run_as_user,
        "target": job.target,
        "paused": not job.enabled,
        "command": job.command,
        "env": job.env,
        "notify_emails": list(job.notify_emails),
        "warnings": list(p.item.warnings),
    }


def _short(text: str) -> str:
    first = text.split("\n", 1)[0] + (" <<…" if "\n" in text else "")
    return first if len(first) <= COMMAND_WIDTH else first[: COMMAND_WIDTH - 1] + "…"


def register(cli: click.Group, helpers: Any) -> None:
    """Add `cronctl import` (helpers: cronctl.output with fail, server_errors, json_option, wants_json, emit_json)."""

    @cli.group("import")
    def import_group() -> None:
        """Bring existing schedules in as crontrio jobs."""

    @import_group.command("crontab")
    @click.argument("files", nargs=-1, required=True, metavar="FILE|-...")
    @click.option("--system", is_flag=True, help="The /etc/crontab and /etc/cron.d/* format: a user column after the times.")
    @click.option("--target", default="", metavar="TARGET", help="Where the jobs run: group:NAME, or a host / host:port.")
    @click.option("--user", "run_as", default="", metavar="USER", help="Run the jobs as this OS user (a user crontab's owner).")
    @click.option(
        "--tz",
        "timezone",
        default="",
        metavar="ZONE",
        help="Zone of entries without CRON_TZ (cron uses the host's).  [default: this machine's zone]",
    )
    @click.option("--workdir", default="", metavar="DIR", help="Working directory of jobs whose crontab sets no HOME.")
    @click.option("--prefix", default="", metavar="NAME", help="Job names are PREFIX-<hash of the line>.  [default: file name]")
    @click.option("--paused", is_flag=True, help="Store every job paused.")
    @click.option("--dry-run", is_flag=True, help="Show what would be stored, store nothing.")
    @click.option("--skip-invalid", is_flag=True, help="Import the valid lines of a file with errors (errors still listed).")
    @click.option("--update", is_flag=True, help="Replace jobs of the same name that differ (their paused state is kept).")
    @click.option("--prune", is_flag=True, help="Delete the jobs an earlier import made from lines no longer in the file.")
    @helpers.json_option
    @click.pass_context
    def import_crontab(
        ctx: click.Context,
        files: tuple[str, ...],
        system: bool,
        target: str,
        run_as: str,
        timezone: str,
        workdir: str,
        prefix: str,
        paused: bool,
        dry_run: bool,
        skip_invalid: bool,
        update: bool,
        prune: bool,
        json_output: bool,
    ) -> None:
        """Import crontab files (FILE, or - for stdin) as jobs.

        \b
        crontab -l | cronctl import crontab --user alice -
        cronctl import crontab --system --target group:web /etc/crontab /etc/cron.d/*
        cronctl import crontab --dry-run mycrontab

        \b
        Every crontab(5) rule applies: NAME=value lines set the environment of
        the entries after them (SHELL runs the command, MAILTO gets failure alerts,
        MAILTO="" none, CRON_TZ is the zone, HOME the working directory); % ends the
        command and the rest is its stdin (% a newline, \\% a literal %); @reboot
        entries are imported paused. Job names are FILE-<hash of the line>, so a
        second import changes nothing; jobs of lines since edited or removed are
        listed as stale (--prune deletes them). A line with an error is reported
        with its number and nothing is stored (exit 2) unless --skip-invalid.
        """
        try:
            zone = validate_timezone(timezone) if timezone else local_timezone()
        except ValidationError as exc:
            helpers.fail(str(exc), helpers.EXIT_INVALID)
        if files.count("-") > 1:
            helpers.fail("stdin (-) can be read only once", helpers.EXIT_INVALID)
        options = ImportOptions(timezone=zone, target=target, user=run_as, workdir=workdir, paused=paused)
        planned, stems, errors, warnings = _convert_all(files, options, prefix, system)
        # --prune with errors: a bad line made no job, so its job would look stale.
        tolerated = skip_invalid and not prune
        blocked = bool(errors) and not tolerated
        if blocked:  # fix the file first: no need to ask the dispatcher
            for p in planned:
                p.action = BLOCKED
        else:
            with helpers.server_errors():
                errors += _plan(ctx, planned, update)
                stale = _stale(ctx, stems, planned, prune)
            planned += stale
            if stale and not prune:
                warnings.append(
                    f"{len(stale)} job(s) made by an earlier import from lines no longer in the input still fire:"
                    f" {', '.join(p.item.job.name for p in stale)} (--prune deletes them)"
                )
            blocked = bool(errors) and not tolerated  # the dispatcher may refuse what passed here
        conflicts = [p for p in planned if p.action == CONFLICT]
        will_store = not dry_run and not blocked and not conflicts
        if will_store:
            with helpers.server_errors():
                _apply(ctx, planned)
        _report(ctx, helpers, json_output, planned, errors, warnings, dry_run=dry_run, stored=will_store, zone=zone)
        if blocked:
            hint = "--prune needs input without errors" if prune else "--skip-invalid imports the valid lines"
            helpers.fail(f"{len(errors)} error(s); nothing {'would be ' if dry_run else ''}stored ({hint})", helpers.EXIT_INVALID)
        if conflicts:
            helpers.fail(
                f"{len(conflicts)} job(s) exist with other settings; nothing stored (--update replaces them)",
                helpers.EXIT_FAILED,
            )


def _convert_all(
    files: tuple[str, ...], options: ImportOptions, prefix: str, system: bool
) -> tuple[list[Planned], dict[str, str], list[str], list[str]]:
    """Every file's jobs, the name stem of each file, errors and warnings."""
    planned: list[Planned] = []
    stems: dict[str, str] = {}  # job-name stem -> the file it names
    errors: list[str] = []
    warnings: list[str] = []
    for source in files:
        # stdin has no file name: a user crontab is named after its user.
        name = prefix or ((options.user or DEFAULT_STEM) if source == "-" else source)
        stem = stem_of(name)
        stems.setdefault(stem, source)
        result = convert(_read(source), dataclasses.replace(options, stem=stem), system=system)
        errors += [_where(source, p) for p in result.errors]
        warnings += [_where(source, p) for p in result.warnings]
        planned += [Planned(source, item) for item in result.jobs]
    if not system and not options.user and planned:
        warnings.append(
            "no --user: these jobs run as the executor's user (root under the shipped systemd unit),"
            " while cron ran a user crontab's jobs as its owner"
        )
    seen: dict[str, Planned] = {}
    for p in planned:
        first = seen.setdefault(p.item.job.name, p)
        if first is not p:
            errors.append(
                f"{p.source}: line {p.item.line}: job name {p.item.job.name} is also made by {first.source} "
                f"line {first.item.line}: give the files different --prefix values"
            )
    return planned, stems, errors, warnings


def _plan(ctx: click.Context, planned: list[Planned], update: bool) -> list[str]:
    """Decide each job's action from what the dispatcher has; the dispatcher
    validates each job to be stored (it is the authority). Errors by line."""
    errors = []
    for p in planned:
        wanted = p.item.job
        try:
            # reveal: env values come back redacted otherwise, and every job
            # with an env would look changed (importing needs admin anyway).
            p.stored = job_from_pb(ctx.obj.client.call(lambda s: s.GetJob, pb.JobRef(name=wanted.name, reveal=True)))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        if p.stored is not None:
            # Only what the import decides counts: a job someone paused or
            # gave retries since is still the same job, and keeps that.
            p.action = UNCHANGED if same_job(p.stored, wanted) else (UPDATE if update else CONFLICT)
            p.item = dataclasses.replace(p.item, job=merged(p.stored, wanted))
        if p.action in (CREATE, UPDATE):
            try:
                ctx.obj.client.call(lambda s: s.ValidateJob, job_to_pb(p.item.job))
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    raise
                errors.append(f"{p.source}: line {p.item.line}: {exc.details()}")
                p.action = INVALID
    return errors


def _stale(ctx: click.Context, stems: dict[str, str], planned: list[Planned], prune: bool) -> list[Planned]:
    """Jobs named like this import's (<stem>-<8 hex>) that no line of it makes."""
    wanted = {p.item.job.name for p in planned}
    out = []
    for stem, source in stems.items():
        shape = re.compile(rf"{re.escape(stem)}-[0-9a-f]{{{HASH_CHARS}}}")
        request = pb.ListJobsRequest(name_prefix=f"{stem}-")
        while True:  # every page: a stale job on page two must not be missed
            reply = ctx.obj.client.call(lambda s: s.ListJobs, request)
            for msg in reply.jobs:
                if shape.fullmatch(msg.name) and msg.name not in wanted:
                    job = job_from_pb(msg)
                    out.append(Planned(source, ImportedJob(0, "", job), DELETE if prune else STALE, job))
            if not reply.next_page_token:
                break
            request.page_token = reply.next_page_token
    return out


def _apply(ctx: click.Context, planned: list[Planned]) -> None:
    for p in planned:
        if p.action == CREATE:
            ctx.obj.client.call(lambda s: s.CreateJob, job_to_pb(p.item.job))
        elif p.action == UPDATE:
            ctx.obj.client.call(lambda s: s.UpdateJob, job_to_pb(p.item.job))
        elif p.action == DELETE:
            ctx.obj.client.call(lambda s: s.DeleteJob, pb.JobRef(name=p.item.job.name))


def _report(
    ctx: click.Context,
    helpers: Any,
    json_output: bool,
    planned: list[Planned],
    errors: list[str],
    warnings: list[str],
    *,
    dry_run: bool,
    stored: bool,
    zone: str,
) -> None:
    shown = [p for p in planned if p.action != INVALID]
    if helpers.wants_json(ctx, json_output):
        helpers.emit_json(
            {
                "dry_run": dry_run,
                "stored": stored,
                "timezone": zone,
                "jobs": [_row(p) for p in shown],
                "errors": errors,
                "warnings": warnings,
            }
        )
    else:
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        for error in errors:
            click.echo(f"error: {error}", err=True)
        if shown:
            rows = [
                [
                    p.item.line or "-",
                    p.item.job.name,
                    p.action,
                    p.item.job.spec,
                    p.item.job.timezone,
                    p.item.job.run_as_user,
                    "paused" if not p.item.job.enabled else "",
                    _short(p.item.job.command),
                ]
                for p in shown
            ]
            headers = ["LINE", "NAME", "ACTION", "SPEC", "TZ", "USER", "STATE", "COMMAND"]
            click.echo(tabulate(rows, headers=headers))
        counts = {a: sum(1 for p in shown if p.action == a) for a in ACTIONS}
        summary = ", ".join(f"{n} {a}" for a, n in counts.items() if n) or "no entries"
        verdict = "dry run: nothing stored" if dry_run else ("stored" if stored else "nothing stored")
        click.echo(f"{summary} ({verdict}; entries without CRON_TZ read in {zone})")
