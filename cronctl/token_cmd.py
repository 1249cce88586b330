"""cronctl token: make admin API tokens and the [tokens] lines that admit them.

Needs no dispatcher: conf.ini stores only the sha256 of each token, so the
token itself is shown once, here, and then lives with whoever uses it.
"""

from __future__ import annotations

import secrets

import click

from crontrio.common.auth import ROLES, hash_token


@click.group()
def token() -> None:
    """Make bearer tokens for the admin API (roles: admin, operator, viewer).

    \b
    admin     everything, including creating, editing and deleting jobs
    operator  read, plus run, kill, pause and resume
    viewer    read only
    """


@token.command("new")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
def token_new(name: str, role: str) -> None:
    """Print a fresh random token for NAME, then the conf.ini line that admits it.

    \b
    Line 1 (stdout): the token; give it to its user (CRONTRIO_TOKEN or --token).
    Line 2 (stdout): NAME = ROLE:SHA256 for [tokens] on every dispatcher.
    The token is not stored anywhere: it cannot be shown again.
    """
    if not name or any(c.isspace() or c in "=:;#[]" for c in name):
        raise click.BadParameter("letters, digits, '.', '_' or '-' only", param_hint="NAME")
    value = secrets.token_urlsafe(32)
    click.echo(value)
    click.echo(f"{name} = {role}:{hash_token(value)}")
    click.echo(
        "^ line 1: the token (shown only now); line 2: paste it into [tokens] on every dispatcher and restart them",
        err=True,
    )


@token.command("hash")
@click.argument("value", metavar="TOKEN")
def token_hash(value: str) -> None:
    """Print the sha256 hex of TOKEN, as [tokens] stores it."""
    click.echo(hash_token(value))
