"""Lists of jobs and runs, as the console pages and the JSON API see them.

The one place that knows how ListJobs/ListRuns page: summaries with the
admin API's opaque cursors (page_token / next_page_token, a (time, id)
cursor, so no row is lost at a page boundary). Callers get a Page with the
items and the next_page_token ("" = no more); a token the dispatcher did not
hand out is a BadPageTokenError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc

from crontrio.console.gateway import Gateway
from crontrio.protos import crontrio_pb2 as pb

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class BadPageTokenError(ValueError):
    """A page token the dispatcher did not hand out (or for other filters)."""


@dataclass
class Page:
    items: list[Any] = field(default_factory=list)
    next_page_token: str = ""


async def _call(gw: Gateway, method: str, request: Any, token: str) -> Any:
    try:
        return await gw.call(method, request, token)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT and (exc.details() or "").startswith("page_token"):
            raise BadPageTokenError(exc.details()) from None
        raise


async def list_jobs(gw: Gateway, token: str, *, name_prefix: str = "", page_token: str = "", page_size: int = 0) -> Page:
    """Jobs by id, name_prefix* only when given."""
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    request = pb.ListJobsRequest(name_prefix=name_prefix, page_token=page_token, limit=size)
    reply = await _call(gw, "ListJobs", request, token)
    return Page(list(reply.jobs), reply.next_page_token)


async def list_runs(
    gw: Gateway,
    token: str,
    *,
    job_name: str = "",
    statuses: list[str] | None = None,
    page_token: str = "",
    page_size: int = 0,
) -> Page:
    """Run summaries, newest first."""
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    request = pb.ListRunsRequest(job_name=job_name, statuses=statuses or [], limit=size, page_token=page_token)
    reply = await _call(gw, "ListRuns", request, token)
    return Page(list(reply.runs), reply.next_page_token)
