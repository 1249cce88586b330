"""cronctl job export / job import: jobs as a versioned JSON document
(common/job_transfer.py), to copy them between environments or keep them in
version control."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click
from tabulate import tabulate

from crontrio.common.job_transfer import (
    CONFLICT,
    CREATE,
    UNCHANGED,
    UPDATE,
    DocumentError,
    ImportPlan,
    apply_import,
    export_document,
    jobs_of,
    plan_import,
)
from crontrio.common.text import printable
from crontrio.cronctl.client import AdminClient


def _caller(client: AdminClient) -> Any:
    """The blocking client as the awaitable `call(method, request)` job_transfer uses."""

    async def call(method: str, request: Any) -> Any:
        return await asyncio.to_thread(client.call, lambda s: getattr(s, method), request)

    return call


def _read(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {source!r}: {getattr(exc, 'strerror', None) or exc}", param_hint="FILE") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError([f"file: not JSON: {exc}"]) from None


def register(job: click.Group, helpers: Any) -> None:
    """Add `job export` and `job import` (helpers: cronctl.output)."""

    @job.command("export")
    @click.argument("names", nargs=-1, metavar="[NAME...]")
    @click.pass_context
    def job_export(ctx: click.Context, names: tuple[str, ...]) -> None:
        """Print jobs (all, or the NAMEs) as a JSON document on stdout.

        \b
        cronctl job export > jobs.json
        cronctl job export backup report > some.json

        Every field is exported, env and header values in clear (not
        <redacted>), so the file restores the jobs exactly: it needs an admin
        token, each revealed job is audited, and the file holds secrets: keep
        it like a password file.
        """
        with helpers.server_errors():
            doc = asyncio.run(export_document(_caller(ctx.obj.client), names))
        click.echo(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False))
        click.echo(f"exported {len(doc['jobs'])} job(s)", err=True)

    @job.command("import")
    @click.argument("source", metavar="FILE|-")
    @click.option("--update", is_flag=True, help="Replace stored jobs of the same name that differ (else: a conflict, exit 1).")
    @click.option("--dry-run", is_flag=True, help="Check everything and show what would change; store nothing.")
    @helpers.json_option
    @click.pass_context
    def job_import(ctx: click.Context, source: str, update: bool, dry_run: bool, json_output: bool) -> None:
        """Create (or with --update replace) the jobs of a `job export` document.

        The whole file is checked first: every job and field, by the dispatcher
        too, and the --after graph. If anything is wrong, nothing is stored
        (exit 2; errors name the job and field). Jobs equal to the stored ones
        are reported unchanged and not written, so importing twice is harmless.
        A stored job that differs is a conflict (exit 1, nothing stored) unless
        --update. Needs an admin token (stored secrets are compared in clear).
        """
        call = _caller(ctx.obj.client)
        try:
            jobs = jobs_of(_read(source))
            with helpers.server_errors():
                plan = asyncio.run(plan_import(call, jobs, update))
        except DocumentError as exc:
            _errors(ctx, helpers, json_output, exc.problems)
            return
        stored = not dry_run and not plan.conflicts
        if stored:
            with helpers.server_errors():
                asyncio.run(apply_import(call, plan))
        _report(ctx, helpers, json_output, plan, dry_run=dry_run, stored=stored)
        if plan.conflicts:
            helpers.fail(
                f"{len(plan.conflicts)} job(s) exist with other settings: {', '.join(plan.conflicts)};"
                f" nothing {'would be ' if dry_run else ''}stored (--update replaces them)",
                helpers.EXIT_FAILED,
            )


def _errors(ctx: click.Context, helpers: Any, json_output: bool, problems: list[str]) -> None:
    summary = f"{len(problems)} error(s) in the file; nothing stored"
    if helpers.wants_json(ctx, json_output):  # one JSON error object, every problem in it
        helpers.fail(f"{summary}: {'; '.join(problems)}", helpers.EXIT_INVALID)
    for problem in problems:
        click.echo(f"error: {printable(problem)}", err=True)
    helpers.fail(summary, helpers.EXIT_INVALID)


def _report(ctx: click.Context, helpers: Any, json_output: bool, plan: ImportPlan, *, dry_run: bool, stored: bool) -> None:
    if helpers.wants_json(ctx, json_output):
        if not plan.conflicts:  # a conflict is an error: stdout stays empty
            helpers.emit_json(
                {"dry_run": dry_run, "stored": stored, "jobs": [{"name": p.job.name, "action": p.action} for p in plan.items]}
            )
        return
    if plan.items:
        click.echo(tabulate([[printable(p.job.name), p.action] for p in plan.items], headers=["NAME", "ACTION"]))
    counts = ", ".join(f"{plan.count(a)} {a}" for a in (CREATE, UPDATE, UNCHANGED, CONFLICT) if plan.count(a)) or "no jobs"
    verdict = "dry run: nothing stored" if dry_run else ("stored" if stored else "nothing stored")
    click.echo(f"{counts} ({verdict})")
