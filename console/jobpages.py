"""Pages that change jobs: the job form (add, edit, clone) and delete.

The form is checked with ValidateJob before anything is stored, and the
errors the admin API names are shown next to their field; CreateJob and
UpdateJob validate again (nothing stored while anything is invalid). An
edit sends "<redacted>" back for secret values it was not shown, which the
admin API reads as "keep the stored value".
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import grpc
from aiohttp import web

from crontrio.console import jobform
from crontrio.console.pages import page, render
from crontrio.console.session import Session
from crontrio.console.state import state_of
from crontrio.protos import crontrio_pb2 as pb

log = logging.getLogger(__name__)
PREVIEW_COUNT = 5


def _q(text: str) -> str:
    return quote(text, safe="")


async def _preview(request: web.Request, session: Session, spec: str, tz: str, name: str) -> tuple[list[int], str]:
    """The next fire times for the form (without JS the page shows them after a submit)."""
    if not spec.strip():
        return [], ""
    wanted = pb.PreviewSpecRequest(spec=spec, timezone=tz, count=PREVIEW_COUNT, job_name=name)
    try:
        return list((await state_of(request).gateway.call("PreviewSpec", wanted, session.token)).fire_ms), ""
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        return [], exc.details() or ""


async def _form_page(
    request: web.Request,
    session: Session,
    *,
    mode: str,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    general: str = "",
    original: str = "",
    status: int = 200,
) -> web.Response:
    errors = errors or {}
    fire_ms, preview_error = await _preview(
        request, session, values.get("spec", ""), values.get("timezone", ""), values.get("name", "")
    )
    if preview_error and "spec" not in errors and "timezone" not in errors:
        errors[jobform.field_of(preview_error) or "spec"] = preview_error
    action = "/jobs:new" if mode != "edit" else f"/jobs/{_q(original)}/edit"
    return render(
        request,
        "job_form.html",
        status=status,
        session=session,
        mode=mode,
        action=action,
        groups=jobform.GROUPS,
        values=values,
        errors=errors,
        general=general,
        open_groups=jobform.open_groups(values, errors),
        original=original,
        fire_ms=fire_ms,
        tz=values.get("timezone", "") or "UTC",
        redacted=jobform.REDACTED,
        has_redacted=jobform.REDACTED in values.get("env", "") + values.get("http_headers", ""),
    )


@page
async def new_form(request: web.Request, session: Session) -> web.StreamResponse:
    source = request.query.get("clone", "")
    if source:
        job = await state_of(request).gateway.call("GetJob", pb.JobRef(name=source), session.token)
        values = jobform.form_from_job(job, clone=True)
        values["name"] = f"{job.name}-copy"
        return await _form_page(request, session, mode="clone", values=values, original=source)
    return await _form_page(request, session, mode="new", values=dict(jobform.DEFAULTS))


@page
async def edit_form(request: web.Request, session: Session) -> web.StreamResponse:
    name = request.match_info["name"]
    job = await state_of(request).gateway.call("GetJob", pb.JobRef(name=name), session.token)
    return await _form_page(request, session, mode="edit", values=jobform.form_from_job(job), original=name)


async def _submit(request: web.Request, session: Session, job_id: int, original: str) -> web.StreamResponse:
    form = await request.post()
    values = {name: str(form.get(name, "")) for name in jobform.FIELDS}
    mode = "edit" if job_id else str(form.get("mode", "new"))
    job, errors = jobform.job_from_form(form)
    job.id = job_id
    gw = state_of(request).gateway

    async def refused(exc: grpc.aio.AioRpcError) -> web.Response:
        details = exc.details() or ""
        field = jobform.field_of(details)
        return await _form_page(
            request,
            session,
            mode=mode,
            values=values,
            errors={**errors, field: details} if field else errors,
            general="" if field else details,
            original=original,
            status=400 if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 409,
        )

    if errors:
        # Some fields could not be read: ValidateJob names another bad one,
        # if any, so both show at once. (It sees a new job: a secret kept
        # by an edit is not its business.)
        try:
            await gw.call("ValidateJob", job, session.token)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            field = jobform.field_of(exc.details() or "")
            if field and field not in errors and not (job_id and field in ("env", "http_headers")):
                errors[field] = exc.details() or ""
        return await _form_page(request, session, mode=mode, values=values, errors=errors, original=original, status=400)
    try:
        stored = await gw.call("UpdateJob" if job_id else "CreateJob", job, session.token)
    except grpc.aio.AioRpcError as exc:
        if exc.code() not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS):
            raise
        return await refused(exc)
    log.info("%s %s job %s in the console", session.user, "changed" if job_id else "created", stored.name)
    raise web.HTTPFound(f"/jobs/{_q(stored.name)}?msg={'saved' if job_id else 'created'}")


@page
async def new_submit(request: web.Request, session: Session) -> web.StreamResponse:
    form = await request.post()
    return await _submit(request, session, 0, str(form.get("original", "")))


@page
async def edit_submit(request: web.Request, session: Session) -> web.StreamResponse:
    name = request.match_info["name"]
    current = await state_of(request).gateway.call("GetJob", pb.JobRef(name=name), session.token)
    return await _submit(request, session, current.id, name)


async def downstream(request: web.Request, session: Session, name: str) -> list[Any]:
    reply = await state_of(request).gateway.call("ListJobs", pb.ListJobsRequest(downstream_of=name, limit=1000), session.token)
    return list(reply.jobs)


@page
async def delete_confirm(request: web.Request, session: Session) -> web.StreamResponse:
    name = request.match_info["name"]
    job = await state_of(request).gateway.call("GetJob", pb.JobRef(name=name), session.token)
    return render(request, "job_delete.html", session=session, job=job, dependents=await downstream(request, session, name))


@page
async def delete_submit(request: web.Request, session: Session) -> web.StreamResponse:
    name = request.match_info["name"]
    await state_of(request).gateway.call("DeleteJob", pb.JobRef(name=name), session.token)
    raise web.HTTPFound("/jobs?msg=delete")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/jobs:new", new_form)
    app.router.add_post("/jobs:new", new_submit)
    app.router.add_get("/jobs/{name}/edit", edit_form)
    app.router.add_post("/jobs/{name}/edit", edit_submit)
    app.router.add_get("/jobs/{name}/delete", delete_confirm)
    app.router.add_post("/jobs/{name}/delete", delete_submit)
