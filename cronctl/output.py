"""What every cronctl command shares: the context object (the admin client,
--json), errors turned into messages and the documented exit codes, tables
and JSON output, and paging through list replies.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
import grpc
from tabulate import tabulate

from crontrio.common.text import printable
from crontrio.cronctl.client import AdminClient, NoServerError

EXIT_FAILED, EXIT_INVALID, EXIT_NO_SERVER = 1, 2, 3
PAGE_SIZE = 1000  # the servers' maximum page of jobs and of runs
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


def short(text: str, width: int = COMMAND_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def paged(ctx: click.Context, method: str, request: Any, items: str, limit: int = 0) -> list[Any]:
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


def is_job_id(text: str) -> bool:
    """An id, as opposed to a name: ASCII digits (str.isdigit() also takes
    "²", which int() refuses) within int64, which the message can carry."""
    return text.isascii() and text.isdigit() and int(text) < 2**63
