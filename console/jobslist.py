"""The jobs list: search by name, tag and owner, filter by state, sort; each
row with its spec in words, zone, next run, last outcome and duration, and
success rate over the recent runs.

One ListJobs call per page (with_run_stats fills the run columns from one
indexed store query), never a call per job. Sorting by name pages through
every job on the dispatcher (order_by=name). Sorting by next run lists the
soonest firings from the dispatcher's in-memory schedule (one page) when
nothing narrows the list; otherwise, and for the last outcome, the rows of
the page are sorted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web

from crontrio.console import errors, readpaths
from crontrio.console.i18n import translator
from crontrio.console.pages import language, page, render
from crontrio.console.session import Session
from crontrio.console.state import state_of
from crontrio.console.text import duration, spec_reading
from crontrio.protos import crontrio_pb2 as pb

SORTS = ("", "name", "next", "outcome")
# Worst first when sorting by outcome: what needs looking at comes first.
_OUTCOME_RANK = {"failed": 0, "timeout": 0, "lost": 0, "killed": 1, "missed": 1, "running": 2, "pending": 2, "queued": 2}


@dataclass(frozen=True)
class JobRow:
    job: Any
    reading: str  # the spec in words ("" when it says nothing more than the spec)
    last_status: str
    last_duration: str
    last_run_id: str
    success_rate: str  # "93%", or "" without finished runs

    @property
    def outcome_rank(self) -> int:
        return _OUTCOME_RANK.get(self.last_status, 3 if self.last_status else 4)


def row_of(job: Any, lang: str) -> JobRow:
    stats = job.run_stats
    rate = f"{100 * stats.recent_succeeded // stats.recent_finished}%" if stats.recent_finished else ""
    return JobRow(
        job=job,
        reading=spec_reading(job.spec, lang),
        last_status=stats.last_status,
        last_duration=duration(stats.last_started_ms, stats.last_finished_ms),
        last_run_id=stats.last_run_id,
        success_rate=rate,
    )


def _failing_matches(job: Any, where: readpaths.JobFilter) -> bool:
    return (not where.tag or where.tag in job.tags) and (not where.owner or job.owner == where.owner)


@page
async def jobs_list(request: web.Request, session: Session) -> web.StreamResponse:
    q = request.query
    state = q.get("state", "") if q.get("state", "") in readpaths.JOB_STATES else ""
    sort = q.get("sort", "") if q.get("sort", "") in SORTS else ""
    where = readpaths.JobFilter(
        name_prefix=q.get("q", "").strip(),
        tag=q.get("tag", "").strip().lower(),
        owner=q.get("owner", "").strip(),
        order_by="name" if sort == "name" else "",
        with_run_stats=True,
    )
    gw, token, page_token = state_of(request).gateway, session.token, q.get("page", "")
    search_error = ""
    soonest = sort == "next" and not (where.name_prefix or where.tag or where.owner or state)
    try:
        if soonest:
            listed = pb.ListJobsRequest(next_firings=True, with_run_stats=True, limit=readpaths.DEFAULT_PAGE_SIZE)
            found = readpaths.Page(list((await gw.call("ListJobs", listed, token)).jobs))
        elif state:
            found = await readpaths.jobs_in_state(gw, token, state, page_token=page_token, where=where)
            if state == "failing":
                found.items = [j for j in found.items if _failing_matches(j, where)]
        else:
            found = await readpaths.list_jobs(gw, token, page_token=page_token, where=where)
    except readpaths.BadPageTokenError:
        raise web.HTTPFound("/jobs") from None
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        # A tag or owner that cannot exist: said next to the search, in the page's language.
        found, search_error = readpaths.Page(), errors.translated(exc.details() or "", translator(language(request)))
    lang = language(request)
    rows = [row_of(job, lang) for job in found.items]
    if sort == "next" and not soonest:
        rows.sort(key=lambda r: (not r.job.next_fire_ms, r.job.next_fire_ms))
    elif sort == "outcome":
        rows.sort(key=lambda r: (r.outcome_rank, r.job.name))
    return render(
        request,
        "jobs.html",
        session=session,
        rows=rows,
        next_page=found.next_page_token,
        q=where.name_prefix,
        tag=where.tag,
        owner=where.owner,
        state=state,
        states=readpaths.JOB_STATES,
        sort=sort,
        sorts=[(s, translator(lang)(label)) for s, label in _SORT_LABELS],
        soonest=soonest,
        search_error=search_error,
    )


_SORT_LABELS = (("", "Oldest first"), ("name", "Name"), ("next", "Next run"), ("outcome", "Last outcome"))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/jobs", jobs_list)
