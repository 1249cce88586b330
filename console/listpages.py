"""The runs list, the audit log and the executors/dispatchers page, with
their filters.

Filters the admin API has (job, status, time range; audit target) are sent
to it; the others (a run's executor, an audit entry's actor and action)
are applied here over a bounded number of pages, so a page costs at most
SCAN_PAGES admin API pages however rare the match, and "next page" goes on
from where the scan stopped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from crontrio.common import status as run_status
from crontrio.console import readpaths, zones
from crontrio.console.pages import page, render
from crontrio.console.session import Session
from crontrio.console.state import state_of
from crontrio.console.text import zone
from crontrio.protos import crontrio_pb2 as pb

SCAN_PAGES = 10
AUDIT_PAGE = 50
AUDIT_SCAN = 500


def _instant(text: str, tz: str) -> int:
    """'2026-12-06T02:30' (a datetime-local field) in `tz` -> epoch ms; 0 when empty or unreadable."""
    if not text:
        return 0
    try:
        return int(datetime.fromisoformat(text).replace(tzinfo=zone(tz)).timestamp() * 1000)
    except ValueError:
        return 0


@page
async def runs_list(request: web.Request, session: Session) -> web.StreamResponse:
    q = request.query
    job, executor = q.get("job", "").strip(), q.get("executor", "").strip()
    wanted = q.get("status", "")
    statuses = [wanted] if wanted in run_status.ALL else []
    # The range is read in the zone times are shown in (the job's zone is no single zone here: UTC).
    range_zone = zones.viewer_zone(request) if zones.mode_of(request) == "local" else "UTC"
    since_ms, until_ms = _instant(q.get("since", ""), range_zone), _instant(q.get("until", ""), range_zone)
    if since_ms and until_ms and until_ms <= since_ms:
        until_ms = 0
    gw, token, page_token = state_of(request).gateway, session.token, q.get("page", "")
    runs: list[Any] = []
    try:
        for _ in range(SCAN_PAGES if executor else 1):
            found = await readpaths.list_runs(
                gw,
                token,
                job_name=job,
                statuses=statuses,
                page_token=page_token,
                since_ms=since_ms,
                until_ms=until_ms,
                page_size=readpaths.MAX_PAGE_SIZE if executor else 0,
            )
            runs += [r for r in found.items if not executor or r.executor == executor]
            page_token = found.next_page_token
            if not page_token or runs:
                break
    except readpaths.BadPageTokenError:
        raise web.HTTPFound("/runs") from None
    return render(
        request,
        "runs.html",
        session=session,
        runs=runs,
        next_page=page_token,
        job=job,
        executor=executor,
        since=q.get("since", ""),
        until=q.get("until", ""),
        range_zone=range_zone,
        status_filter=statuses[0] if statuses else "",
        all_statuses=sorted(run_status.ALL),
    )


@page
async def audit_list(request: web.Request, session: Session) -> web.StreamResponse:
    q = request.query
    target, actor, action = q.get("target", "").strip(), q.get("actor", "").strip(), q.get("action", "").strip()
    before = int(q["before"]) if q.get("before", "").isdigit() else 0
    gw = state_of(request).gateway
    entries: list[Any] = []
    batch = AUDIT_SCAN if actor or action else AUDIT_PAGE
    next_before = ""
    for _ in range(SCAN_PAGES if actor or action else 1):
        message = pb.ListAuditRequest(target=target, limit=batch, before_id=before)
        got = list((await gw.call("ListAudit", message, session.token)).entries)
        for entry in got:
            if (not actor or entry.actor == actor) and (not action or entry.action.startswith(action)):
                entries.append(entry)
        before = got[-1].id if got else 0
        next_before = str(before) if len(got) == batch else ""
        if not next_before or len(entries) >= AUDIT_PAGE:
            break
    return render(
        request,
        "audit.html",
        session=session,
        entries=entries,
        target=target,
        actor=actor,
        action=action,
        next_before=next_before,
    )


@page
async def cluster(request: web.Request, session: Session) -> web.StreamResponse:
    gw = state_of(request).gateway
    executors = (await gw.call("ListExecutors", pb.ListExecutorsRequest(), session.token)).executors
    dispatchers = (await gw.call("ListDispatchers", pb.ListDispatchersRequest(), session.token)).dispatchers
    return render(request, "cluster.html", session=session, executors=executors, dispatchers=dispatchers)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/runs", runs_list)
    app.router.add_get("/audit", audit_list)
    app.router.add_get("/cluster", cluster)
