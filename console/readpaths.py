"""Lists of jobs and runs, as the console pages and the JSON API see them.

The one place that knows how ListJobs/ListRuns page: summaries with the
admin API's opaque cursors (page_token / next_page_token, a (time, id)
cursor, so no row is lost at a page boundary). Callers get a Page with the
items and the next_page_token ("" = no more); a token the dispatcher did not
hand out is a BadPageTokenError.
"""

from __future__ import annotations

import dataclasses
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


@dataclass(frozen=True)
class JobFilter:
    """What a jobs list is narrowed to and how it is ordered (ListJobsRequest's)."""

    name_prefix: str = ""
    tag: str = ""
    owner: str = ""
    order_by: str = ""  # "" (id) or "name"
    with_run_stats: bool = False


async def list_jobs(
    gw: Gateway,
    token: str,
    *,
    name_prefix: str = "",
    page_token: str = "",
    page_size: int = 0,
    where: JobFilter | None = None,
) -> Page:
    """Jobs by id (or as `where` says), name_prefix* only when given."""
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    w = where or JobFilter(name_prefix=name_prefix)
    request = pb.ListJobsRequest(
        name_prefix=w.name_prefix,
        tag=w.tag,
        owner=w.owner,
        order_by=w.order_by,
        with_run_stats=w.with_run_stats,
        page_token=page_token,
        limit=size,
    )
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
    since_ms: int = 0,
    until_ms: int = 0,
) -> Page:
    """Run summaries, newest first (scheduled in [since_ms, until_ms) when given)."""
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    request = pb.ListRunsRequest(
        job_name=job_name,
        statuses=statuses or [],
        limit=size,
        page_token=page_token,
        since_ms=since_ms,
        until_ms=until_ms,
    )
    reply = await _call(gw, "ListRuns", request, token)
    return Page(list(reply.runs), reply.next_page_token)


# Jobs read per request at most when filtering by state, so a filter that
# matches few of 100,000 jobs costs a bounded amount per page.
STATE_SCAN_LIMIT = 2000
FAILED_STATUSES = ("failed", "timeout", "lost", "killed", "missed")
JOB_STATES = ("paused", "invalid", "failing")


def _in_state(job: Any, state: str) -> bool:
    return bool(job.paused) if state == "paused" else bool(job.invalid_reason)


async def jobs_in_state(
    gw: Gateway, token: str, state: str, *, name_prefix: str = "", page_token: str = "", where: JobFilter | None = None
) -> Page:
    """Paused or invalid jobs, reading pages of jobs until some match or
    STATE_SCAN_LIMIT were read; the token goes on from there. Failing jobs
    (their latest run failed) come from the recent failures instead."""
    w = where or JobFilter(name_prefix=name_prefix)
    if state == "failing":
        return Page(await failing_jobs(gw, token, name_prefix=w.name_prefix))
    found: list[Any] = []
    scanned = 0
    # The scan reads no run stats (they would be read for every scanned job);
    # the matches get theirs from one more call.
    scan = dataclasses.replace(w, with_run_stats=False)
    while True:
        page = await list_jobs(gw, token, page_token=page_token, page_size=MAX_PAGE_SIZE, where=scan)
        scanned += len(page.items)
        found += [j for j in page.items if _in_state(j, state)]
        page_token = page.next_page_token
        if not page_token or found or scanned >= STATE_SCAN_LIMIT:
            break
    if w.with_run_stats and found:
        wanted = pb.ListJobsRequest(names=[j.name for j in found], with_run_stats=True, limit=MAX_PAGE_SIZE)
        stats = {j.name: j.run_stats for j in (await _call(gw, "ListJobs", wanted, token)).jobs}
        for job in found:
            if job.name in stats:
                job.run_stats.CopyFrom(stats[job.name])
    return Page(found, page_token)


async def failing_jobs(gw: Gateway, token: str, *, name_prefix: str = "", limit: int = 50) -> list[Any]:
    """Jobs whose latest run failed, among those with a recent failure (the
    most recently failed first). Two calls whatever the count: the recent
    failures, then those jobs with their run stats (ListJobs names)."""
    recent = await list_runs(gw, token, statuses=list(FAILED_STATUSES), page_size=200)
    candidates: list[str] = []
    for run in recent.items:
        if run.job_name.startswith(name_prefix) and run.job_name not in candidates:
            candidates.append(run.job_name)
    if not candidates:
        return []
    wanted = pb.ListJobsRequest(names=candidates[:limit], with_run_stats=True, limit=max(limit, 1))
    found = {job.name: job for job in (await gw.call("ListJobs", wanted, token)).jobs}
    # Deleted since, or its latest run went well: not failing any more.
    return [found[n] for n in candidates[:limit] if n in found and found[n].run_stats.last_status in FAILED_STATUSES]


async def count_runs(gw: Gateway, token: str, *, since_ms: int, until_ms: int = 0, job_name: str = "") -> dict[str, int]:
    """Runs scheduled in [since_ms, until_ms) by status, counted by the store
    (Admin.CountRuns): the dashboard's "last 24 h by outcome" without listing
    the tens of thousands of runs a busy day holds."""
    request = pb.CountRunsRequest(since_ms=since_ms, until_ms=until_ms, job_name=job_name)
    reply = await gw.call("CountRuns", request, token)
    return dict(reply.counts)


async def count_runs_by_bucket(
    gw: Gateway, token: str, *, since_ms: int, until_ms: int, bucket_ms: int, job_name: str = ""
) -> dict[int, dict[str, int]]:
    """{bucket start ms: {status: runs}} for the buckets of bucket_ms in
    [since_ms, until_ms) holding runs (Admin.CountRuns with bucket_ms): the
    24 h chart by outcome is count_runs_by_bucket(since_ms=now - 24 h,
    until_ms=now, bucket_ms=3600000), whatever the day holds, in one call."""
    request = pb.CountRunsRequest(since_ms=since_ms, until_ms=until_ms, bucket_ms=bucket_ms, job_name=job_name)
    reply = await gw.call("CountRuns", request, token)
    return {b.start_ms: dict(b.counts) for b in reply.buckets}
