"""cronctl cron next: preview a spec's fire times (offline: no server needed)."""

from __future__ import annotations

import json

import click

from crontrio.common.clock import now_ms
from crontrio.common.cron import CronSchedule, validate_timezone
from crontrio.common.errors import ValidationError
from crontrio.cronctl.output import (
    EXIT_INVALID,
    fail,
    json_option,
    wants_json,
)
from crontrio.cronctl.timefmt import iso_utc, parse_instant


@click.group()
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
