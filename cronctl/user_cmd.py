"""cronctl user: console users (add, list, passwd, disable) over the admin API.

Passwords are prompted for (twice, hidden), or read from stdin with
--password-stdin for scripts; they are never command-line arguments (those
show up in `ps` and shell history).
"""

from __future__ import annotations

import sys
from typing import Any

import click
from tabulate import tabulate

from crontrio.common.auth import ROLES
from crontrio.cronctl.timefmt import iso_utc
from crontrio.protos import crontrio_pb2 as pb


def _password(from_stdin: bool, prompt: str = "Password") -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True))


def _row(user: pb.User) -> dict[str, Any]:
    return {
        "name": user.name,
        "role": user.role,
        "disabled": user.disabled,
        "created": iso_utc(user.created_ms) if user.created_ms else "",
        "updated": iso_utc(user.updated_ms) if user.updated_ms else "",
    }


def register(cli: click.Group, helpers: Any) -> None:
    """Add `cronctl user ...` (helpers: server_errors, json_option, wants_json, emit_json)."""

    @cli.group()
    def user() -> None:
        """Console users: log in to the web console with a name and password.

        \b
        Roles as for API tokens: admin (everything), operator (read, run,
        kill, pause, resume), viewer (read). Managing users needs admin.
        """

    stdin_option = click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")

    @user.command("add")
    @click.argument("name")
    @click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
    @stdin_option
    @helpers.json_option
    @click.pass_context
    def user_add(ctx: click.Context, name: str, role: str, password_stdin: bool, json_output: bool) -> None:
        """Add user NAME (prompts for the password: at least 10 characters)."""
        password = _password(password_stdin)
        with helpers.server_errors():
            created = ctx.obj.client.call(lambda s: s.CreateUser, pb.CreateUserRequest(name=name, role=role, password=password))
        if helpers.wants_json(ctx, json_output):
            helpers.emit_json(_row(created))
        else:
            click.echo(f"user {created.name} added with role {created.role}")

    @user.command("list")
    @helpers.json_option
    @click.pass_context
    def user_list(ctx: click.Context, json_output: bool) -> None:
        """Every user with role and state (never password hashes)."""
        with helpers.server_errors():
            reply = ctx.obj.client.call(lambda s: s.ListUsers, pb.ListUsersRequest())
        rows = [_row(u) for u in reply.users]
        if helpers.wants_json(ctx, json_output):
            helpers.emit_json(rows)
        elif not rows:
            click.echo("no users")
        else:
            click.echo(tabulate(rows, headers="keys"))

    @user.command("passwd")
    @click.argument("name")
    @click.option("--current", is_flag=True, help="Prompt for the current password (needed for your own with a session token).")
    @stdin_option
    @click.pass_context
    def user_passwd(ctx: click.Context, name: str, current: bool, password_stdin: bool) -> None:
        """Set NAME's password; their other sessions end."""
        current_password = str(click.prompt("Current password", hide_input=True, err=True)) if current else ""
        password = _password(password_stdin, "New password")
        request = pb.SetUserPasswordRequest(name=name, password=password, current_password=current_password)
        with helpers.server_errors():
            ctx.obj.client.call(lambda s: s.SetUserPassword, request)
        click.echo(f"password of {name} changed")

    @user.command("disable")
    @click.argument("name")
    @click.pass_context
    def user_disable(ctx: click.Context, name: str) -> None:
        """Disable NAME: their sessions end and they can no longer log in."""
        with helpers.server_errors():
            ctx.obj.client.call(lambda s: s.DisableUser, pb.UserRef(name=name))
        click.echo(f"user {name} disabled")
