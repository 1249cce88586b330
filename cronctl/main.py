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
import os

import click

from crontrio import __version__
from crontrio.cronctl import cron_cmd, import_cmd, job_cmd, observe, output, run_cmd, token_cmd, transfer_cmd, user_cmd
from crontrio.cronctl.client import with_default_port
from crontrio.cronctl.output import EXIT_NO_SERVER, Ctx, fail

DEFAULT_SERVER = "127.0.0.1:5920"


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


# One module per noun; the command modules that take `helpers` get the shared output helpers.
cli.add_command(job_cmd.job)
cli.add_command(run_cmd.run)
cli.add_command(cron_cmd.cron)
cli.add_command(token_cmd.token)
observe.register(cli, run_cmd.run, output)
import_cmd.register(cli, output)
user_cmd.register(cli, output)
transfer_cmd.register(job_cmd.job, output)


def main() -> None:
    cli(prog_name="cronctl")


if __name__ == "__main__":
    main()
