"""Lists of jobs and runs, as the console pages and the JSON API see them.

The one place that knows how ListJobs/ListRuns page: today by job id
(after_id) and by scheduled time (before_ms); the admin API is moving to
summaries with opaque cursors (page_token / next_page_token), and only this
module changes then. Callers get a Page with the items and an opaque
next_page_token ("" = no more).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from console.gateway import Gateway
from protos import crontrio_pb2 as pb

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class BadPageTokenError(ValueError):
    """A page token this console did not hand out."""


@dataclass
class Page:
    items: list[Any] = field(default_factory=list)
    next_page_token: str = ""


def _int_token(token: str) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise BadPageTokenError(f"page_token: not a token this API returned: {token!r}")
    return int(token)


async def list_jobs(gw: Gateway, token: str, *, name_prefix: str = "", page_token: str = "", page_size: int = 0) -> Page:
    """Jobs in a stable order, name_prefix* only when given."""
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    request = pb.ListJobsRequest(name_prefix=name_prefix, after_id=_int_token(page_token), limit=size)
    reply = await gw.call("ListJobs", request, token)
    return Page(list(reply.jobs), str(reply.next_after_id) if reply.next_after_id else "")


async def list_runs(
    gw: Gateway,
    token: str,
    *,
    job_name: str = "",
    statuses: list[str] | None = None,
    page_token: str = "",
    page_size: int = 0,
) -> Page:
    """Runs, newest first."""
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    request = pb.ListRunsRequest(job_name=job_name, statuses=statuses or [], limit=size, before_ms=_int_token(page_token))
    reply = await gw.call("ListRuns", request, token)
    runs = list(reply.runs)
    # before_ms is exclusive on scheduled time: good enough until cursors land.
    return Page(runs, str(runs[-1].scheduled_ms) if len(runs) == size and runs[-1].scheduled_ms else "")
