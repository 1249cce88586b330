"""Jobs as a versioned JSON document, to move them between environments.

`export_document` reads jobs through the admin API (revealed: the secret
values are real, so it needs an admin) and `plan_import` / `apply_import`
bring such a document back: the whole document is checked first (shape,
every field, then the dispatcher's ValidateJob and the dependency graph with
the stored jobs), nothing is stored if anything is wrong, a job equal to the
stored one is left alone (a second import writes nothing), and a differing
one is a conflict unless `update`.

The calls go through `call(method, request)`, an awaitable, so the same code
serves cronctl (a blocking client on a thread) and the console (async).
"""

from __future__ import annotations

import dataclasses
import time
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc

from crontrio.common.convert import job_from_pb, job_to_pb
from crontrio.common.errors import ValidationError
from crontrio.common.jobs import check_dependencies, validate_job
from crontrio.common.model import Dependency, Job
from crontrio.protos import crontrio_pb2 as pb

FORMAT = "crontrio.jobs"
VERSION = 1
# Set by the store, not part of a job's definition.
_NOT_EXPORTED = frozenset({"id", "created_ms", "updated_ms", "defect"})
FIELDS = tuple(f.name for f in dataclasses.fields(Job) if f.name not in _NOT_EXPORTED)
_TYPES = typing.get_type_hints(Job)
PAGE = 1000

CREATE, UPDATE, UNCHANGED, CONFLICT = "create", "update", "unchanged", "conflict"
Call = Callable[[str, Any], Awaitable[Any]]


class DocumentError(Exception):
    """Problems with the document as a whole, or with jobs in it (all of them listed)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Planned:
    job: Job
    action: str = CREATE
    stored: Job | None = None


@dataclass
class ImportPlan:
    items: list[Planned] = field(default_factory=list)

    @property
    def conflicts(self) -> list[str]:
        return [p.job.name for p in self.items if p.action == CONFLICT]

    def count(self, action: str) -> int:
        return sum(1 for p in self.items if p.action == action)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ------------------------------------------------------------ the document


def job_entry(job: Job) -> dict[str, Any]:
    """One job as the document holds it: every field of its definition."""
    entry: dict[str, Any] = {}
    for name in FIELDS:
        value = getattr(job, name)
        if name == "after":
            value = [{"job": d.job, "when": d.when} for d in value]
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, dict):
            value = dict(sorted(value.items()))
        entry[name] = value
    return entry


def document(jobs: Iterable[Job]) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "exported": now_iso(), "jobs": [job_entry(j) for j in jobs]}


def _typed(name: str, value: Any) -> Any:
    """The value of field `name` from JSON, in the model's type; ValidationError(name) if it is not one."""
    kind = _TYPES[name]
    origin = typing.get_origin(kind)
    if name == "after":
        if not isinstance(value, list) or not all(isinstance(d, dict) and isinstance(d.get("job"), str) for d in value):
            raise ValidationError(name, 'expected a list of {"job": NAME, "when": CONDITION}')
        return tuple(Dependency(job=d["job"], when=str(d.get("when") or "on_success")) for d in value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ValidationError(name, f"expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(name, f"expected a whole number, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(name, f"expected a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ValidationError(name, f"expected a string, got {value!r}")
        return value
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ValidationError(name, "expected an object of strings")
        return dict(value)
    if origin is tuple:
        item = typing.get_args(kind)[0]
        if not isinstance(value, list) or not all(isinstance(v, item) and not isinstance(v, bool) for v in value):
            raise ValidationError(name, f"expected a list of {'whole numbers' if item is int else 'strings'}")
        return tuple(value)
    raise ValidationError(name, "cannot be imported")  # pragma: no cover - every Job field is handled above


def jobs_of(data: Any) -> list[Job]:
    """The jobs of a parsed document, each validated; DocumentError listing
    every problem, each naming the job and the field."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DocumentError([f'format: not a crontrio jobs document (expected "format": "{FORMAT}")'])
    if data.get("version") != VERSION:
        raise DocumentError([f"version: this crontrio reads version {VERSION}, the document is {data.get('version')!r}"])
    entries = data.get("jobs")
    if not isinstance(entries, list):
        raise DocumentError(["jobs: expected a list of jobs"])
    problems: list[str] = []
    jobs: list[Job] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        label = f"job #{index + 1}"
        if not isinstance(entry, dict):
            problems.append(f"{label}: expected an object")
            continue
        if isinstance(entry.get("name"), str) and entry["name"]:
            label = f"job {entry['name']}"
        try:
            unknown = sorted(set(entry) - set(FIELDS))
            if unknown:
                raise ValidationError(unknown[0], f"unknown field (known: {', '.join(FIELDS)})")
            for required in ("name", "command"):
                if required not in entry:
                    raise ValidationError(required, "is required")
            values = {k: _typed(k, v) for k, v in entry.items()}
            # Through the API's message, as the dispatcher will see it (its
            # zero values mean defaults), so a re-import compares equal.
            job = job_from_pb(job_to_pb(validate_job(Job(**{"spec": "", **values}))))
        except ValidationError as exc:
            problems.append(f"{label}: {exc}")
            continue
        if job.name in seen:
            problems.append(f"{label}: name: listed twice in the document")
            continue
        seen.add(job.name)
        jobs.append(job)
    if problems:
        raise DocumentError(problems)
    return jobs


# ------------------------------------------------------------ through the API


async def _all_jobs(call: Call) -> list[pb.Job]:
    out: list[pb.Job] = []
    request = pb.ListJobsRequest(limit=PAGE)
    while True:
        reply = await call("ListJobs", request)
        out.extend(reply.jobs)
        if not reply.next_page_token:
            return out
        request.page_token = reply.next_page_token


async def export_document(call: Call, names: Iterable[str] = ()) -> dict[str, Any]:
    """The named jobs (every job when none), secret values revealed: the
    caller needs the admin role, and each reveal is audited by the dispatcher."""
    wanted = list(names) or [j.name for j in await _all_jobs(call)]
    jobs = [job_from_pb(await call("GetJob", pb.JobRef(name=name, reveal=True))) for name in wanted]
    return document(jobs)


def same_definition(a: Job, b: Job) -> bool:
    return all(getattr(a, f) == getattr(b, f) for f in FIELDS)


async def plan_import(call: Call, jobs: list[Job], update: bool) -> ImportPlan:
    """What importing `jobs` does to each; DocumentError (naming job and
    field) when the dispatcher refuses one or the dependency graph breaks."""
    plan = ImportPlan()
    problems: list[str] = []
    stored_jobs = {j.name: job_from_pb(j) for j in await _all_jobs(call)}
    for job in jobs:
        item = Planned(job)
        if job.name in stored_jobs:
            # Revealed, or every job with a secret would look changed.
            item.stored = job_from_pb(await call("GetJob", pb.JobRef(name=job.name, reveal=True)))
            item.job = dataclasses.replace(job, id=item.stored.id)
            same = same_definition(item.stored, job)
            item.action = UNCHANGED if same else (UPDATE if update else CONFLICT)
        # The dispatcher is the authority, but checks upstreams against the
        # stored jobs: a job whose upstream is only in this document was
        # checked by the same rules in jobs_of(), and the graph is below.
        if item.action in (CREATE, UPDATE) and all(d.job in stored_jobs for d in job.after):
            try:
                await call("ValidateJob", job_to_pb(job))
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    raise
                problems.append(f"job {job.name}: {exc.details()}")
        plan.items.append(item)
    graph = {**stored_jobs, **{p.job.name: p.job for p in plan.items}}
    for item in plan.items:
        try:
            check_dependencies(item.job, [j for n, j in graph.items() if n != item.job.name])
        except ValidationError as exc:
            problems.append(f"job {item.job.name}: {exc}")
    if problems:
        raise DocumentError(problems)
    plan.items = _upstreams_first(plan.items)
    return plan


def _upstreams_first(items: list[Planned]) -> list[Planned]:
    """The items ordered so each one's upstreams in the document come before
    it (the dispatcher checks that upstreams exist; the graph is acyclic)."""
    by_name = {p.job.name: p for p in items}
    ordered: list[Planned] = []
    done: set[str] = set()

    def visit(item: Planned) -> None:
        if item.job.name in done:
            return
        done.add(item.job.name)
        for dep in item.job.after:
            if dep.job in by_name:
                visit(by_name[dep.job])
        ordered.append(item)

    for item in items:
        visit(item)
    return ordered


async def apply_import(call: Call, plan: ImportPlan) -> None:
    """Store a plan without conflicts (creates and updates, upstreams first)."""
    if plan.conflicts:
        raise ValueError(f"conflicts: {', '.join(plan.conflicts)}")
    for item in plan.items:
        if item.action == CREATE:
            await call("CreateJob", job_to_pb(item.job))
        elif item.action == UPDATE:
            await call("UpdateJob", job_to_pb(item.job))
