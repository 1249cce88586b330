"""cronctl commands that look at the running system: tail, executors, dispatchers, audit."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from crontrio.common.text import OutputEscaper, printable
from crontrio.cronctl.timefmt import iso_utc
from crontrio.protos import crontrio_pb2 as pb


def register(cli: click.Group, run: click.Group, helpers: Any) -> None:
    """Add the commands to cronctl's groups (helpers: fail, server_errors, json_option, wants_json, emit_json, table)."""

    @run.command("tail")
    @click.argument("run_id")
    @click.option("-f", "--follow", is_flag=True, help="Keep printing live output until the run ends.")
    @click.pass_context
    def run_tail(ctx: click.Context, run_id: str, follow: bool) -> None:
        """Print a run's output: what is recorded, or with -f the output so far and then live output."""
        final = ""
        # A task's output is untrusted: lines and tabs are kept, every other
        # control character (ESC of a CSI or OSC sequence, CR, C1) is shown
        # escaped (\x1b) instead of driving the terminal.
        escaper = OutputEscaper()
        with helpers.server_errors():
            for chunk in ctx.obj.client.stream(lambda s: s.TailRun, pb.TailRunRequest(run_id=run_id, follow=follow)):
                if chunk.data:
                    sys.stdout.buffer.write(escaper.feed(chunk.data).encode())
                    sys.stdout.buffer.flush()
                final = chunk.status or final
        rest = escaper.feed(b"", final=True)
        if rest:
            sys.stdout.buffer.write(rest.encode())
            sys.stdout.buffer.flush()
        if final:
            click.echo(f"--- run {printable(run_id)} {printable(final)}", err=True)

    @cli.group()
    def executor() -> None:
        """Executors: where runs go."""

    @executor.command("list")
    @helpers.json_option
    @click.pass_context
    def executor_list(ctx: click.Context, json_output: bool) -> None:
        """Executors known to the dispatcher, with health and the runs it has on each."""
        with helpers.server_errors():
            reply = ctx.obj.client.call(lambda s: s.ListExecutors, pb.ListExecutorsRequest())
        rows = [
            {
                "address": e.address,
                "group": e.group,
                "host": e.host,
                "healthy": e.healthy,
                "running": e.running,
                "labels": dict(e.labels),
            }
            for e in reply.executors
        ]
        if helpers.wants_json(ctx, json_output):
            helpers.emit_json(rows)
        elif not rows:
            click.echo("no executors known")
        else:
            table = [[r["address"], r["group"], r["host"], "yes" if r["healthy"] else "NO", r["running"]] for r in rows]
            click.echo(helpers.table(table, headers=["ADDRESS", "GROUP", "HOST", "HEALTHY", "RUNNING"]))

    @cli.group()
    def dispatcher() -> None:
        """Dispatchers: who fires."""

    @dispatcher.command("list")
    @helpers.json_option
    @click.pass_context
    def dispatcher_list(ctx: click.Context, json_output: bool) -> None:
        """Dispatchers registered (etcd), or the one answering (embedded mode)."""
        with helpers.server_errors():
            reply = ctx.obj.client.call(lambda s: s.ListDispatchers, pb.ListDispatchersRequest())
        rows = [
            {"id": d.id, "address": d.address, "version": d.version, "started": iso_utc(d.started_ms)} for d in reply.dispatchers
        ]
        if helpers.wants_json(ctx, json_output):
            helpers.emit_json(rows)
        else:
            click.echo(helpers.table([list(r.values()) for r in rows], headers=["ID", "ADDRESS", "VERSION", "STARTED (UTC)"]))

    @cli.group()
    def audit() -> None:
        """The audit log of changes made through the API."""

    @audit.command("list")
    @click.option("--target", default="", metavar="NAME|RUN_ID", help="Only entries about this job or run.")
    @click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
    @click.option("--before-id", default=0, type=click.IntRange(0, 2**63 - 1), help="Older entries than this id (paging).")
    @helpers.json_option
    @click.pass_context
    def audit_list(ctx: click.Context, target: str, limit: int, before_id: int, json_output: bool) -> None:
        """Who changed what, when: newest first, with before/after in --json."""
        with helpers.server_errors():
            reply = ctx.obj.client.call(
                lambda s: s.ListAudit, pb.ListAuditRequest(target=target, limit=limit, before_id=before_id)
            )
        rows = [
            {
                "id": e.id,
                "at": iso_utc(e.at_ms),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "before": json.loads(e.before) if e.before else None,
                "after": json.loads(e.after) if e.after else None,
            }
            for e in reply.entries
        ]
        if helpers.wants_json(ctx, json_output):
            helpers.emit_json(rows)
        elif not rows:
            click.echo("no audit entries")
        else:
            click.echo(
                helpers.table(
                    [[r["id"], r["at"], r["actor"], r["action"], r["target"]] for r in rows],
                    headers=["ID", "AT (UTC)", "ACTOR", "ACTION", "TARGET"],
                )
            )
