"""The JSON API's job export and import: GET /api/v1/jobs:export and
POST /api/v1/jobs:import, the `cronctl job export/import` document
(common/job_transfer.py) over HTTP, with the caller's token.

Export reveals secret values (the dispatcher requires the admin role and
audits each reveal); import checks the whole document first and stores
nothing when any job is invalid (400, every problem listed, each naming the
job and field) or, without ?update=true, when a stored job differs (409).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crontrio.common.job_transfer import DocumentError, apply_import, export_document, jobs_of, plan_import
from crontrio.console.state import state_of


def _caller(request: web.Request, write: bool) -> Any:
    from crontrio.console import api  # api registers this module's handlers: imported late

    token = api._token(request, write)
    gateway = state_of(request).gateway

    async def call(method: str, message: Any) -> Any:
        return await gateway.call(method, message, token)

    return call


def _flag(request: web.Request, *names: str) -> bool:
    return any(request.query.get(n, "").lower() in ("1", "true", "yes") for n in names)


async def jobs_export(request: web.Request) -> web.Response:
    """The jobs named by ?name= (repeatable; every job when none)."""
    doc = await export_document(_caller(request, False), request.query.getall("name", []))
    return web.json_response(doc)


async def jobs_import(request: web.Request) -> web.Response:
    from crontrio.console import api

    call = _caller(request, True)
    data = await api._body(request)
    dry_run = _flag(request, "dryRun", "dry_run")
    try:
        plan = await plan_import(call, jobs_of(data), _flag(request, "update"))
    except DocumentError as exc:
        body = {"code": "INVALID_ARGUMENT", "message": f"{len(exc.problems)} error(s); nothing stored", "problems": exc.problems}
        return web.json_response({"error": body}, status=400)
    if plan.conflicts:
        message = f"job(s) exist with other settings: {', '.join(plan.conflicts)}; nothing stored (?update=true replaces them)"
        return api.error_response(409, "ALREADY_EXISTS", message, "jobs")
    if not dry_run:
        await apply_import(call, plan)
    jobs = [{"name": p.job.name, "action": p.action} for p in plan.items]
    return web.json_response({"dryRun": dry_run, "stored": not dry_run, "jobs": jobs})
