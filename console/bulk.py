"""Bulk actions on the jobs list: pause, resume, run or delete the checked
jobs, after a confirmation page (both steps are CSRF-checked POSTs).

Each job is one admin API call made as the user, so roles, audit and
validation apply to each; the result page says what happened to every job.
"""

from __future__ import annotations

import logging

import grpc
from aiohttp import web

from crontrio.console.jobpages import downstream
from crontrio.console.pages import page, render
from crontrio.console.session import Session
from crontrio.console.state import state_of
from crontrio.protos import crontrio_pb2 as pb

log = logging.getLogger(__name__)
METHODS = {"pause": "PauseJob", "resume": "ResumeJob", "run": "RunJob", "delete": "DeleteJob"}
MAX_JOBS = 500  # one form's worth (the jobs list pages hold at most this many)


@page
async def bulk(request: web.Request, session: Session) -> web.StreamResponse:
    form = await request.post()
    action = str(form.get("action", ""))
    names = sorted({str(n) for n in form.getall("job", []) if str(n)})
    if action not in METHODS or not names:
        return render(request, "error.html", status=400, session=session, message="Choose jobs and an action.")
    if len(names) > MAX_JOBS:
        return render(request, "error.html", status=400, session=session, message="Too many jobs at once.")
    if form.get("confirmed") != "yes":
        dependents: dict[str, list[str]] = {}
        if action == "delete":
            for name in names:
                others = [j.name for j in await downstream(request, session, name) if j.name not in names]
                if others:
                    dependents[name] = others
        return render(request, "bulk_confirm.html", session=session, action=action, names=names, dependents=dependents)
    gw = state_of(request).gateway
    results: list[tuple[str, str]] = []
    for name in names:
        try:
            await gw.call(METHODS[action], pb.JobRef(name=name), session.token)
            results.append((name, ""))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise
            results.append((name, f"{exc.code().name}: {exc.details()}"))
    log.info("%s: bulk %s of %d jobs, %d refused", session.user, action, len(names), sum(1 for _, e in results if e))
    return render(request, "bulk_done.html", session=session, action=action, results=results)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/jobs:bulk", bulk)
