"""Server-rendered pages: login, dashboard, jobs, job detail, runs, run detail.

Every page is made from admin API calls with the logged-in user's session
token; what the user may do is decided by the dispatcher, the page only
hides controls the role could not use. Every POST carries a CSRF token.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import grpc
from aiohttp import web

from crontrio.common import status as run_status
from crontrio.common.auth import CLIENT_HEADER
from crontrio.common.clock import now_ms
from crontrio.console import charts, errors, readpaths, zones
from crontrio.console.gateway import NoDispatcherError
from crontrio.console.i18n import LANG_COOKIE, LANGUAGES, choose, translator
from crontrio.console.session import CSRF_FIELD, PRE_COOKIE, SESSION_COOKIE, Session, new_pre_session, set_cookie
from crontrio.console.state import state_of
from crontrio.console.text import duration, output_text, spec_reading
from crontrio.protos import crontrio_pb2 as pb

log = logging.getLogger(__name__)
PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WRITE_ROLES = ("operator", "admin")
# Flash messages by key: the query string never carries text to show.
FLASH = {
    "run": "The run was started.",
    "pause": "The job was paused.",
    "resume": "The job was resumed.",
    "kill": "Kill requested.",
    "created": "The job was created.",
    "saved": "The job was saved.",
    "delete": "The job was deleted.",
}


def language(request: web.Request) -> str:
    return choose(request.headers.get("Accept-Language", ""), request.cookies.get(LANG_COOKIE, ""))


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    state = state_of(request)
    session: Session | None = values.pop("session", None)
    lang = language(request)
    csrf = state.signer.csrf_for(session.token) if session else ""
    can_write = bool(session and session.role in WRITE_ROLES and not state.read_only)
    tr = translator(lang)
    html = state.templates.get_template(template).render(
        _=tr,
        api_error=lambda details: errors.translated(details, tr),
        lang=lang,
        languages=[(code, name) for code, (name, _) in LANGUAGES.items()],
        path=request.path_qs,
        session=session,
        csrf=csrf,
        csrf_field=CSRF_FIELD,
        can_write=can_write,
        can_admin=can_write and session is not None and session.role == "admin",
        read_only=state.read_only,
        flash=FLASH.get(request.query.get("msg", ""), ""),
        duration=duration,
        **zones.formatters(request),
        **values,
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _login_redirect(request: web.Request, expired: bool = False) -> web.HTTPFound:
    # Back to the page after login; an action (POST) is not repeated: its page is.
    back = request.path_qs if request.method == "GET" else request.path.rsplit("/", 1)[0] or "/"
    target = "/login?next=" + _quote(back) + ("&expired=1" if expired else "")
    response = web.HTTPFound(target)
    if expired:
        response.del_cookie(SESSION_COOKIE, path="/")
    return response


def _quote(text: str) -> str:
    return quote(text, safe="")


def safe_next(target: str) -> str:
    """Only a path on this site (no //host, no scheme): no open redirect after login."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def page(handler: Callable[[web.Request, Session], Awaitable[web.StreamResponse]]) -> PageHandler:
    """A page for logged-in users: the session, and admin API errors as pages."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        session = state_of(request).signer.session_from(request)
        if session is None:
            raise _login_redirect(request)
        if request.method == "POST":
            form = await request.post()
            if not state_of(request).signer.csrf_ok(session.token, str(form.get(CSRF_FIELD, ""))):
                log.warning("refused %s %s for %s: bad or missing CSRF token", request.method, request.path, session.user)
                return render(request, "error.html", status=403, session=session, message="The form expired; please try again.")
            if state_of(request).read_only:
                return render(request, "error.html", status=403, session=session, message="The console is read-only.")
        try:
            return await handler(request, session)
        except grpc.aio.AioRpcError as exc:
            return _rpc_error_page(request, session, exc)
        except NoDispatcherError:
            return render(request, "error.html", status=503, session=session, message="No dispatcher is reachable.")

    return wrapped


def _rpc_error_page(request: web.Request, session: Session, exc: grpc.aio.AioRpcError) -> web.StreamResponse:
    code = exc.code()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        raise _login_redirect(request, expired=True)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return render(request, "error.html", status=403, session=session, message="You do not have permission to do this.")
    if code == grpc.StatusCode.NOT_FOUND:
        return render(request, "error.html", status=404, session=session, message="Not found", detail=exc.details() or "")
    log.warning("%s %s: admin API said %s: %s", request.method, request.path, code.name, exc.details())
    return render(request, "error.html", status=502, session=session, message="Something went wrong.", detail=exc.details() or "")


# ------------------------------------------------------------------ login


async def login_form(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    state = state_of(request)
    if error == "" and state.signer.session_from(request) is not None:
        raise web.HTTPFound(safe_next(request.query.get("next", "/")))
    pre = request.cookies.get(PRE_COOKIE) or new_pre_session()
    response = render(
        request,
        "login.html",
        status=status,
        error=error or ("Your session has ended; please log in again." if request.query.get("expired") else ""),
        login_csrf=state.signer.csrf_for("pre:" + pre),
        next=safe_next(request.query.get("next", "/")),
    )
    set_cookie(response, request, PRE_COOKIE, pre, max_age=3600)
    return response


async def login_get(request: web.Request) -> web.StreamResponse:
    return await login_form(request)


async def login_post(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    form = await request.post()
    pre = request.cookies.get(PRE_COOKIE, "")
    if not pre or not state.signer.csrf_ok("pre:" + pre, str(form.get(CSRF_FIELD, ""))):
        return await login_form(request, "The form expired; please try again.", 403)
    user, password = str(form.get("user", "")), str(form.get("password", ""))
    try:
        # The browser's address, for the audit log (the dispatcher sees only the console).
        client = ((CLIENT_HEADER, request.remote or ""),)
        reply = await state.gateway.call("Login", pb.LoginRequest(user=user, password=password), "", client)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return await login_form(request, "Too many failed logins; try again later.", 429)
        if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT):
            return await login_form(request, "wrong user name or password", 401)
        log.warning("login of %r failed: %s %s", user, exc.code().name, exc.details())
        return await login_form(request, "Something went wrong.", 502)
    except NoDispatcherError:
        return await login_form(request, "No dispatcher is reachable.", 503)
    session = Session(reply.token, reply.user, reply.role, reply.expires_ms)
    response = web.HTTPFound(safe_next(str(form.get("next", "/"))))
    max_age = max(60, (reply.expires_ms - now_ms()) // 1000)
    set_cookie(response, request, SESSION_COOKIE, state.signer.session_cookie(session), max_age=max_age)
    response.del_cookie(PRE_COOKIE, path="/")
    raise response


async def logout_post(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    session = state.signer.session_from(request)
    form = await request.post()
    if session is not None:
        if not state.signer.csrf_ok(session.token, str(form.get(CSRF_FIELD, ""))):
            return render(request, "error.html", status=403, session=session, message="The form expired; please try again.")
        try:
            await state.gateway.call("Logout", pb.LogoutRequest(), session.token)
        except (grpc.aio.AioRpcError, NoDispatcherError) as exc:
            log.info("logout of %s: the session could not be ended at the dispatcher (%s)", session.user, exc)
    response = web.HTTPFound("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def set_language(request: web.Request) -> web.StreamResponse:
    lang = request.query.get("to", "")
    response = web.HTTPFound(safe_next(request.query.get("next", "/")))
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/", samesite="Strict", httponly=True)
    raise response


# ------------------------------------------------------------------ pages


ATTEMPTS_SHOWN = 200  # retries are at most 100 per firing (x shards: the first 200 are shown)


@page
async def dashboard(request: web.Request, session: Session) -> web.StreamResponse:
    gw = state_of(request).gateway
    executors = (await gw.call("ListExecutors", pb.ListExecutorsRequest(), session.token)).executors
    dispatchers = (await gw.call("ListDispatchers", pb.ListDispatchersRequest(), session.token)).dispatchers
    active = await readpaths.list_runs(gw, session.token, statuses=sorted(run_status.ACTIVE), page_size=20)
    failed = await readpaths.list_runs(gw, session.token, statuses=["failed", "timeout", "lost", "killed"], page_size=50)
    missed = await readpaths.list_runs(gw, session.token, statuses=["missed"], page_size=10)
    upcoming = (await gw.call("ListJobs", pb.ListJobsRequest(next_firings=True, limit=10), session.token)).jobs
    failing: dict[str, Any] = {}
    for run in failed.items:  # newest first: the first one per job is its latest failure
        failing.setdefault(run.job_name, run)
    now = now_ms()
    # Counted by the store per hour (Admin.CountRuns): every run of the day, none listed.
    hourly = await readpaths.count_runs_by_bucket(
        gw, session.token, since_ms=now - 24 * charts.HOUR_MS, until_ms=now, bucket_ms=charts.HOUR_MS
    )
    fmt = zones.formatters(request)
    chart_zone = str(fmt["viewer_zone"]) if fmt["tz_mode"] == "local" else "UTC"
    buckets = charts.hourly_outcomes_from_counts(hourly, now)
    return render(
        request,
        "dashboard.html",
        session=session,
        executors=executors,
        dispatchers=dispatchers,
        active=active.items,
        failing=list(failing.values()),
        missed=missed.items,
        upcoming=upcoming,
        day_chart=charts.outcomes_chart(
            buckets, now, chart_zone, translator(language(request))("Runs in the last 24 hours by outcome")
        ),
        day_totals={name: sum(b[name] for b in buckets) for name, _ in charts.OUTCOMES},
        day_capped=False,  # the counts hold every run (the template still knows the capped case)
    )


@page
async def job_detail(request: web.Request, session: Session) -> web.StreamResponse:
    gw = state_of(request).gateway
    name = request.match_info["name"]
    job = await gw.call("GetJob", pb.JobRef(name=name), session.token)
    fire_times: list[int] = []
    preview_error = ""
    if job.spec:
        try:
            # job_name: H fields spread as for this job, so these are its real times.
            wanted = pb.PreviewSpecRequest(spec=job.spec, timezone=job.timezone, count=10, job_name=job.name)
            preview = await gw.call("PreviewSpec", wanted, session.token)
            fire_times = list(preview.fire_ms)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            preview_error = exc.details() or ""
    runs = await readpaths.list_runs(gw, session.token, job_name=name, page_size=50)
    downstream = (await gw.call("ListJobs", pb.ListJobsRequest(downstream_of=name, limit=100), session.token)).jobs
    return render(
        request,
        "job.html",
        session=session,
        job=job,
        spec_reading=spec_reading(job.spec, language(request)),
        fire_times=fire_times,
        preview_error=preview_error,
        runs=runs.items[:20],
        runs_chart=charts.runs_chart(
            runs.items, job.timezone or "UTC", translator(language(request))("Duration and outcome of the recent runs")
        ),
        downstream=downstream,
    )


@page
async def job_action(request: web.Request, session: Session) -> web.StreamResponse:
    name, action = request.match_info["name"], request.match_info["action"]
    method = {"run": "RunJob", "pause": "PauseJob", "resume": "ResumeJob"}[action]
    await state_of(request).gateway.call(method, pb.JobRef(name=name), session.token)
    raise web.HTTPFound(f"/jobs/{_quote(name)}?msg={action}")


@page
async def run_detail(request: web.Request, session: Session) -> web.StreamResponse:
    gw = state_of(request).gateway
    run = await gw.call("GetRun", pb.RunRef(run_id=request.match_info["run_id"]), session.token)
    tz = "UTC"
    try:
        tz = (await gw.call("GetJob", pb.JobRef(id=run.job_id), session.token)).timezone or "UTC"
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:  # a deleted job: its runs stay, shown in UTC
            raise
    # Every attempt (and shard) of the same firing: same job, same scheduled
    # instant; one ListRuns on the (job_id, scheduled_ms) index.
    firing = pb.ListRunsRequest(job_id=run.job_id, since_ms=run.scheduled_ms, until_ms=run.scheduled_ms + 1, limit=ATTEMPTS_SHOWN)
    chain = sorted((await gw.call("ListRuns", firing, session.token)).runs, key=lambda r: (r.shard, r.attempt, r.run_id))
    return render(
        request,
        "run.html",
        session=session,
        run=run,
        chain=chain if len(chain) > 1 else [],
        tz=tz,
        output=output_text(run.output),
        active=run.status in run_status.ACTIVE,
    )


@page
async def run_kill(request: web.Request, session: Session) -> web.StreamResponse:
    run_id = request.match_info["run_id"]
    await state_of(request).gateway.call("KillRun", pb.RunRef(run_id=run_id), session.token)
    raise web.HTTPFound(f"/runs/{_quote(run_id)}?msg=kill")


@page
async def account(request: web.Request, session: Session) -> web.StreamResponse:
    me = await state_of(request).gateway.call("WhoAmI", pb.WhoAmIRequest(), session.token)  # as the dispatcher sees it
    return render(request, "account.html", session=session, me=me, error="", changed=request.query.get("changed") == "1")


def _account_error(request: web.Request, session: Session, error: str) -> web.Response:
    me = pb.WhoAmIReply(name=session.user, role=session.role, kind="session", expires_ms=session.expires_ms)
    return render(request, "account.html", status=400, session=session, me=me, error=error, changed=False)


@page
async def account_password(request: web.Request, session: Session) -> web.StreamResponse:
    form = await request.post()
    new, again = str(form.get("password", "")), str(form.get("password_again", ""))
    if new != again:
        return _account_error(request, session, "The new passwords do not match.")
    change = pb.SetUserPasswordRequest(name=session.user, password=new, current_password=str(form.get("current_password", "")))
    try:
        await state_of(request).gateway.call("SetUserPassword", change, session.token)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        details = exc.details() or ""
        error = "The current password is wrong." if details.startswith("current_password:") else details
        return _account_error(request, session, error)
    raise web.HTTPFound("/account?changed=1")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_get)
    app.router.add_post("/login", login_post)
    app.router.add_post("/logout", logout_post)
    app.router.add_get("/lang", set_language)
    app.router.add_get("/tz", zones.set_mode)
    app.router.add_get("/", dashboard)
    app.router.add_get("/jobs/{name}", job_detail)
    app.router.add_post("/jobs/{name}/{action:run|pause|resume}", job_action)
    app.router.add_get("/runs/{run_id}", run_detail)
    app.router.add_post("/runs/{run_id}/kill", run_kill)
    app.router.add_get("/account", account)
    app.router.add_post("/account/password", account_password)
