"""The JSON API under /api/v1: the admin gRPC calls in the proto3 JSON mapping.

Authorization: ``Bearer <token>`` (an API token or a session token from
POST /api/v1/login), passed on to the dispatcher, which decides. A browser
session cookie works too, with the X-CSRF-Token header on every write.
Errors: ``{"error": {"code": "INVALID_ARGUMENT", "field": "spec", "message": "..."}}``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from crontrio.common.auth import CLIENT_HEADER, bearer_token
from crontrio.console import errors, live, readpaths, transfer_api
from crontrio.console.gateway import NoDispatcherError
from crontrio.console.i18n import LANG_COOKIE, choose, translator
from crontrio.console.session import CSRF_HEADER
from crontrio.console.state import state_of
from crontrio.console.text import output_text
from crontrio.protos import crontrio_pb2 as pb

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)
PREFIX = "/api/v1"
HTTP_OF = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
# The admin API names the bad field first: "spec: ...", "env[0]: ...".
_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\[\]]*): ")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field_name: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field_name


def error_response(status: int, code: str, message: str, field_name: str = "", lang: str = "en") -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if field_name:
        body["field"] = field_name
    if lang != "en":
        # For the console's own pages (the preview as you type): the message in
        # the reader's language as far as it can be mapped; scripts read "message".
        body["localizedMessage"] = errors.translated(message, translator(lang))
    return web.json_response({"error": body}, status=status)


def _from_rpc(exc: grpc.aio.AioRpcError, lang: str) -> web.Response:
    details = exc.details() or exc.code().name
    match = _FIELD.match(details)
    return error_response(HTTP_OF.get(exc.code(), 500), exc.code().name, details, match.group(1) if match else "", lang)


@web.middleware
async def api_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    if not request.path.startswith(PREFIX + "/") and request.path != PREFIX:
        return await handler(request)
    # Only a browser that chose a language (cookie or Accept-Language) gets localizedMessage.
    lang = choose(request.headers.get("Accept-Language", ""), request.cookies.get(LANG_COOKIE, ""))
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.field, lang)
    except grpc.aio.AioRpcError as exc:
        return _from_rpc(exc, lang)
    except NoDispatcherError as exc:
        return error_response(503, "UNAVAILABLE", f"no dispatcher reachable: {exc}")
    except readpaths.BadPageTokenError as exc:
        return error_response(400, "INVALID_ARGUMENT", str(exc), "page_token")
    except web.HTTPNotFound:
        return error_response(404, "NOT_FOUND", f"no such API path: {request.path}")
    except web.HTTPMethodNotAllowed as exc:
        return error_response(
            405, "UNIMPLEMENTED", f"{request.method} not allowed here; allowed: {', '.join(sorted(exc.allowed_methods))}"
        )


# ---------------------------------------------------------------- helpers


def _token(request: web.Request, write: bool) -> str:
    """The caller's token: Authorization header, else the session cookie (+ CSRF on writes)."""
    state = state_of(request)
    if write and state.read_only:
        raise ApiError(403, "PERMISSION_DENIED", "the console is read-only ([console] read_only)")
    header = request.headers.get("Authorization")
    if header is not None:
        token = bearer_token([("authorization", header)])
        if token is None:
            raise ApiError(401, "UNAUTHENTICATED", "Authorization: expected 'Bearer <token>'")
        return token
    session = state.signer.session_from(request)
    if session is None:
        raise ApiError(
            401, "UNAUTHENTICATED", "send 'Authorization: Bearer <token>' (an API token or a session from /api/v1/login)"
        )
    if write and not state.signer.csrf_ok(session.token, request.headers.get(CSRF_HEADER, "")):
        raise ApiError(403, "PERMISSION_DENIED", f"{CSRF_HEADER}: missing or wrong (needed with a session cookie)", CSRF_HEADER)
    return session.token


def to_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message)


def reply(message: Message, status: int = 200) -> web.Response:
    return web.json_response(to_json(message), status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(
            415 if request.can_read_body else 400, "INVALID_ARGUMENT", "body: send JSON (Content-Type: application/json)", "body"
        )
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "INVALID_ARGUMENT", f"body: not valid JSON: {exc}", "body") from None
    if not isinstance(data, dict):
        raise ApiError(400, "INVALID_ARGUMENT", "body: expected a JSON object", "body")
    return data


_PARSE_FIELD = re.compile(r'(?:field named "|Failed to parse |for field )([A-Za-z0-9_]+)')


def parse(data: dict[str, Any], message: M) -> M:
    """JSON (proto3 mapping: camelCase or field names) into `message`; 400 naming the field."""
    try:
        json_format.ParseDict(data, message)
    except json_format.ParseError as exc:
        text = str(exc)
        match = _PARSE_FIELD.search(text)
        raise ApiError(400, "INVALID_ARGUMENT", text, _field_name(message, match.group(1)) if match else "body") from None
    return message


def _field_name(message: Message, json_or_name: str) -> str:
    for f in message.DESCRIPTOR.fields:
        if json_or_name in (f.name, f.json_name):
            return f.name
    return json_or_name


def _int(request: web.Request, name: str, default: int = 0) -> int:
    value = request.query.get(name, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, "INVALID_ARGUMENT", f"{name}: expected a whole number, got {value!r}", name) from None


def _query(request: web.Request, *names: str) -> str:
    """A query parameter given as camelCase or snake_case."""
    for name in names:
        if name in request.query:
            return request.query[name]
    return ""


async def call(request: web.Request, method: str, message: Message, write: bool = False) -> Any:
    return await state_of(request).gateway.call(method, message, _token(request, write))


# --------------------------------------------------------------- handlers


async def jobs_list(request: web.Request) -> web.Response:
    downstream_of = _query(request, "downstreamOf", "downstream_of")
    next_firings = _query(request, "nextFirings", "next_firings").lower() in ("1", "true", "yes")
    if downstream_of or next_firings:  # one page, answered from the dispatcher's memory
        size = _int(request, "pageSize", _int(request, "page_size"))
        stats = _query(request, "withRunStats", "with_run_stats").lower() in ("1", "true", "yes")
        message = pb.ListJobsRequest(downstream_of=downstream_of, next_firings=next_firings, limit=size, with_run_stats=stats)
        found = await call(request, "ListJobs", message)
        return web.json_response({"jobs": [to_json(j) for j in found.jobs], "nextPageToken": ""})
    where = readpaths.JobFilter(
        name_prefix=request.query.get("q", ""),
        tag=request.query.get("tag", ""),
        owner=request.query.get("owner", ""),
        order_by=_query(request, "orderBy", "order_by"),
        with_run_stats=_query(request, "withRunStats", "with_run_stats").lower() in ("1", "true", "yes"),
    )
    page = await readpaths.list_jobs(
        state_of(request).gateway,
        _token(request, False),
        page_token=_query(request, "pageToken", "page_token"),
        page_size=_int(request, "pageSize", _int(request, "page_size")),
        where=where,
    )
    return web.json_response({"jobs": [to_json(j) for j in page.items], "nextPageToken": page.next_page_token})


async def jobs_create(request: web.Request) -> web.Response:
    job = parse(await _body(request), pb.Job())
    return reply(await call(request, "CreateJob", job, write=True), status=201)


async def jobs_validate(request: web.Request) -> web.Response:
    job = parse(await _body(request), pb.Job())
    return reply(await call(request, "ValidateJob", job))


async def job_get(request: web.Request) -> web.Response:
    """Env and header values come back "<redacted>" unless an admin asks
    with ?reveal=true (audited by the dispatcher; others get 403)."""
    reveal = request.query.get("reveal", "").lower() in ("1", "true", "yes")
    return reply(await call(request, "GetJob", pb.JobRef(name=request.match_info["name"], reveal=reveal)))


async def job_patch(request: web.Request) -> web.Response:
    """Changes only the fields given (proto3 JSON), the rest as stored."""
    data = await _body(request)
    patch = parse(data, pb.Job())
    token = _token(request, True)
    current = await state_of(request).gateway.call("GetJob", pb.JobRef(name=request.match_info["name"]), token)
    if patch.id and patch.id != current.id:  # the path names the job; the body must not point at another
        raise ApiError(400, "INVALID_ARGUMENT", f"id: cannot be changed (job {current.name!r} has id {current.id})", "id")
    for key in data:
        descriptor = next(f for f in pb.Job.DESCRIPTOR.fields if key in (f.name, f.json_name))
        name = descriptor.name
        if descriptor.is_repeated:
            current.ClearField(name)
            getattr(current, name).MergeFrom(getattr(patch, name))
        elif descriptor.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(current, name).CopyFrom(getattr(patch, name))
        else:
            setattr(current, name, getattr(patch, name))
    return reply(await state_of(request).gateway.call("UpdateJob", current, token))


async def job_delete(request: web.Request) -> web.Response:
    return reply(await call(request, "DeleteJob", pb.JobRef(name=request.match_info["name"]), write=True))


def _job_action(method: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return reply(await call(request, method, pb.JobRef(name=request.match_info["name"]), write=True))

    return handler


async def runs_list(request: web.Request) -> web.Response:
    page = await readpaths.list_runs(
        state_of(request).gateway,
        _token(request, False),
        job_name=_query(request, "job", "jobName", "job_name"),
        statuses=request.query.getall("status", []),
        page_token=_query(request, "pageToken", "page_token"),
        page_size=_int(request, "pageSize", _int(request, "page_size")),
    )
    return web.json_response({"runs": [to_json(r) for r in page.items], "nextPageToken": page.next_page_token})


async def run_get(request: web.Request) -> web.Response:
    return reply(await call(request, "GetRun", pb.RunRef(run_id=request.match_info["run_id"])))


async def run_output(request: web.Request) -> web.StreamResponse:
    """SSE (Accept: text/event-stream) from Last-Event-ID / ?offset=; else
    the output so far, as text (Accept: text/plain) or JSON."""
    gw, token, run_id = state_of(request).gateway, _token(request, False), request.match_info["run_id"]
    if "text/event-stream" in request.headers.get("Accept", ""):
        return await live.stream(request, gw, token, run_id)
    data, status = await live.so_far(gw, token, run_id)
    text = output_text(data)
    if "text/plain" in request.headers.get("Accept", ""):
        return web.Response(text=text, content_type="text/plain", charset="utf-8")
    return web.json_response({"runId": run_id, "status": status, "offset": str(len(data)), "text": text})


async def run_kill(request: web.Request) -> web.Response:
    return reply(await call(request, "KillRun", pb.RunRef(run_id=request.match_info["run_id"]), write=True))


async def executors(request: web.Request) -> web.Response:
    return reply(await call(request, "ListExecutors", pb.ListExecutorsRequest()))


async def dispatchers(request: web.Request) -> web.Response:
    return reply(await call(request, "ListDispatchers", pb.ListDispatchersRequest()))


async def audit(request: web.Request) -> web.Response:
    message = pb.ListAuditRequest(
        target=request.query.get("target", ""),
        limit=_int(request, "limit"),
        before_id=_int(request, "beforeId", _int(request, "before_id")),
    )
    return reply(await call(request, "ListAudit", message))


async def spec_preview(request: web.Request) -> web.Response:
    message = pb.PreviewSpecRequest(
        spec=request.query.get("spec", ""),
        timezone=request.query.get("tz", ""),
        count=_int(request, "count"),
        after_ms=_int(request, "after", _int(request, "afterMs")),
        job_name=request.query.get("job", ""),
    )
    return reply(await call(request, "PreviewSpec", message))


async def login(request: web.Request) -> web.Response:
    message = parse(await _body(request), pb.LoginRequest())
    client = ((CLIENT_HEADER, request.remote or ""),)  # for the audit log
    return reply(await state_of(request).gateway.call("Login", message, "", client))


async def logout(request: web.Request) -> web.Response:
    return reply(await call(request, "Logout", pb.LogoutRequest(), write=True))


async def whoami(request: web.Request) -> web.Response:
    return reply(await call(request, "WhoAmI", pb.WhoAmIRequest()))


async def openapi(request: web.Request) -> web.Response:
    from crontrio.console.openapi import document

    return web.json_response(document())


# ------------------------------------------------------------------ routes


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    summary: str
    query: tuple[str, ...] = ()
    body: str = ""  # request message name, for the OpenAPI document
    response: str = ""
    roles: str = "viewer"
    extra: dict[str, Any] = field(default_factory=dict)


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/jobs",
        jobs_list,
        "Jobs, a page at a time (q = name prefix, tag, owner; orderBy=name; withRunStats=true adds runStats: latest "
        "run and success rate); or (one page) the jobs that run after downstreamOf, or with nextFirings=true "
        "the jobs that fire next, soonest first",
        ("q", "tag", "owner", "orderBy", "withRunStats", "pageToken", "pageSize", "downstreamOf", "nextFirings"),
        response="ListJobsPage",
    ),
    Route(
        "POST",
        "/jobs",
        jobs_create,
        "Create a job (validated; 400 names the bad field, nothing stored)",
        body="Job",
        response="Job",
        roles="admin",
    ),
    Route("POST", "/jobs:validate", jobs_validate, "Validate a job without storing it", body="Job", response="Job"),
    Route("GET", "/jobs:export", transfer_api.jobs_export, "Jobs as a document, secrets in clear", ("name",), roles="admin"),
    Route("POST", "/jobs:import", transfer_api.jobs_import, "Import a jobs document", ("update", "dryRun"), roles="admin"),
    Route(
        "GET", "/jobs/{name}", job_get, "One job (secret values redacted unless ?reveal=true, admin)", ("reveal",), response="Job"
    ),
    Route("PATCH", "/jobs/{name}", job_patch, "Change the given fields of a job", body="Job", response="Job", roles="admin"),
    Route("DELETE", "/jobs/{name}", job_delete, "Delete a job (its runs stay)", response="DeleteJobReply", roles="admin"),
    Route("POST", "/jobs/{name}/run", _job_action("RunJob"), "Run a job now", response="RunJobReply", roles="operator"),
    Route("POST", "/jobs/{name}/pause", _job_action("PauseJob"), "Pause a job", response="Job", roles="operator"),
    Route("POST", "/jobs/{name}/resume", _job_action("ResumeJob"), "Resume a job", response="Job", roles="operator"),
    Route(
        "GET",
        "/runs",
        runs_list,
        "Runs, newest first, a page at a time",
        ("job", "status", "pageToken", "pageSize"),
        response="ListRunsPage",
    ),
    Route("GET", "/runs/{run_id}", run_get, "One run (output base64, as proto3 JSON maps bytes)", response="Run"),
    Route(
        "GET",
        "/runs/{run_id}/output",
        run_output,
        "A run's output as text (ANSI stripped): JSON {runId, status, offset, text}, text/plain, or with "
        "Accept: text/event-stream live events (output, id = byte offset; end with the status); "
        "resume with Last-Event-ID or ?offset=",
        ("offset",),
    ),
    Route("POST", "/runs/{run_id}/kill", run_kill, "Kill a running run", response="KillRunReply", roles="operator"),
    Route("GET", "/executors", executors, "Executors with health and load", response="ListExecutorsReply"),
    Route("GET", "/dispatchers", dispatchers, "Dispatchers", response="ListDispatchersReply"),
    Route("GET", "/audit", audit, "The audit log, newest first", ("target", "limit", "beforeId"), response="ListAuditReply"),
    Route(
        "GET",
        "/spec/preview",
        spec_preview,
        "Next fire times of a spec (job: spread H fields as for that job name)",
        ("spec", "tz", "count", "after", "job"),
        response="PreviewSpecReply",
    ),
    Route(
        "POST",
        "/login",
        login,
        "Log in: a session token for Authorization: Bearer",
        body="LoginRequest",
        response="LoginReply",
        roles="",
    ),
    Route("POST", "/logout", logout, "End the session the call is made with", response="LogoutReply"),
    Route("GET", "/whoami", whoami, "Who the token belongs to", response="WhoAmIReply"),
    Route("GET", "/openapi.json", openapi, "This document", roles=""),
)


def add_routes(app: web.Application) -> None:
    for route in ROUTES:
        app.router.add_route(route.method, PREFIX + route.path, route.handler)
