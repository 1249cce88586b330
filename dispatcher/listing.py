"""The Admin API's reading side: pages of jobs and of runs, run counts, the
audit log. AdminServicer (dispatcher/admin_servicer.py) hands requests here
and turns InvalidRequestError and NotFoundError into gRPC status codes.

A job in a reply says whether it is scheduled: `invalid_reason` comes from
what job sync found (dispatcher/job_sync.py), and the next firing from the
dispatcher's schedule. Pages are keyed by signed tokens (dispatcher/paging.py)
that carry the request's filters, so a token cannot be replayed elsewhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from crontrio.common import status, task_rules
from crontrio.common.convert import job_to_pb, run_to_pb
from crontrio.common.errors import ValidationError
from crontrio.common.jobs import validate_job
from crontrio.common.model import Job
from crontrio.common.schedule import Schedule
from crontrio.common.secrets import has_secrets, redact
from crontrio.common.store.async_store import AsyncStore
from crontrio.dispatcher import paging
from crontrio.dispatcher.job_sync import JobSync
from crontrio.protos import crontrio_pb2 as pb

DEFAULT_RUN_LIMIT = 20
MAX_RUN_LIMIT = 1000
MAX_COUNT_BUCKETS = 1000  # CountRuns: buckets in one window (a chart, not an export)
DEFAULT_JOB_PAGE = 500
MAX_JOB_PAGE = 1000


class InvalidRequestError(ValueError):
    """An argument out of range; the text names the field first (INVALID_ARGUMENT)."""


class NotFoundError(LookupError):
    """What the request names does not exist (NOT_FOUND)."""


class Listing:
    """Reads jobs, runs and audit entries for Admin API replies."""

    def __init__(self, store: AsyncStore, schedule: Schedule, job_sync: JobSync) -> None:
        self._store = store
        self._schedule = schedule
        self._sync = job_sync

    def job_reply(self, job: Job, reveal: bool = False) -> pb.Job:
        """The job for a reply: env and header values redacted unless
        revealed; a stored job that cannot be scheduled says why."""
        reason = self._invalid_reason(job)
        hide = not reveal and has_secrets(job)
        try:
            msg = job_to_pb(redact(job) if hide else job, 0 if reason else self._schedule.next_fire_ms(job.id) or 0)
            msg.secrets_redacted = hide
        except (ValueError, TypeError) as exc:
            # A hand-written row whose values do not even fit the message
            # (e.g. retries beyond int32): list what identifies it, and why.
            msg = pb.Job(id=job.id, name=job.name, spec=job.spec, timezone=job.timezone, command=job.command)
            msg.secrets_redacted = bool(job.env or job.http_headers)  # none of them is in the message
            reason = reason or f"job: stored values do not fit the API: {exc}"
        msg.invalid_reason = reason
        return msg

    def _invalid_reason(self, job: Job) -> str:
        """Why a stored job is not scheduled ("" when it is valid), as job sync
        found it; paused jobs and jobs sync has not seen yet are checked here."""
        if job.enabled and job.id in self._sync.jobs:
            return ""
        if job.enabled and job.id in self._sync.invalid:
            return self._sync.invalid[job.id]
        try:
            validate_job(job)
        except ValidationError as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - a bad row is reported, never an UNKNOWN for the whole list
            return f"job: cannot be checked: {exc!r}"
        return ""

    async def list_jobs(self, request: pb.ListJobsRequest) -> pb.ListJobsReply:
        limit = request.limit or DEFAULT_JOB_PAGE
        if not 0 < limit <= MAX_JOB_PAGE:
            raise InvalidRequestError(
                f"limit: must be between 1 and {MAX_JOB_PAGE} (0 = {DEFAULT_JOB_PAGE}), got {request.limit}"
            )
        if request.order_by not in ("", "id", "name"):
            raise InvalidRequestError(f"order_by: must be id or name, got {request.order_by!r}")
        if request.next_firings:
            reply = pb.ListJobsReply(jobs=[self.job_reply(job) for _, job in self._schedule.soonest(limit)])
        elif request.names:
            if len(request.names) > limit:
                raise InvalidRequestError(f"names: at most {limit} (the limit) at once, got {len(request.names)}")
            found = await self._store.jobs_by_names(list(request.names))
            reply = pb.ListJobsReply(jobs=[self.job_reply(j) for j in found])
        elif request.downstream_of:
            ids = self._sync.dependents_of(request.downstream_of)[:limit]
            found = await self._store.jobs_by_ids(ids) if ids else []
            reply = pb.ListJobsReply(jobs=[self.job_reply(j) for j in sorted(found, key=lambda j: j.name)])
        else:
            reply = await self._list_jobs_page(request, limit)
        if request.with_run_stats and reply.jobs:
            await self._fill_run_stats(reply.jobs)
        return reply

    async def _list_jobs_page(self, request: pb.ListJobsRequest, limit: int) -> pb.ListJobsReply:
        by_name = request.order_by == "name"
        # Without tag/owner/order the digest is the one older tokens were made with.
        filters: list[str] = ["jobs", request.name_prefix]
        if request.tag or request.owner:
            filters += [request.tag, request.owner]
        if by_name:
            filters.append("by-name")
        after_id, after_name = request.after_id, "" if by_name else None
        try:
            if request.tag:
                task_rules.check_tags([request.tag], field="tag")
            task_rules.check_owner(request.owner)
            if request.page_token and by_name:
                after_name = paging.decode(request.page_token, filters, (str,))[0]
            elif request.page_token:
                after_id = paging.decode(request.page_token, filters, (int,))[0]
        except ValidationError as exc:
            raise InvalidRequestError(str(exc)) from None
        jobs = await self._store.list_jobs(
            name_prefix=request.name_prefix,
            after_id=after_id,
            limit=limit + 1,
            tag=request.tag,
            owner=request.owner,
            after_name=after_name,
        )
        cursor: Callable[[pb.Job], list[Any]] = (lambda j: [j.name]) if by_name else (lambda j: [j.id])
        page, token = paging.page([self.job_reply(j) for j in jobs], limit, cursor, filters)
        return pb.ListJobsReply(jobs=page, next_page_token=token, next_after_id=page[-1].id if token and not by_name else 0)

    async def _fill_run_stats(self, listed: Any) -> None:
        """Job.run_stats for a page, from one store query (common/store/run_stats.py)."""
        found = await self._store.job_run_stats([j.id for j in listed])
        for job in listed:
            stats = found.get(job.id)
            if stats is not None:
                job.run_stats.CopyFrom(pb.JobRunStats(**dataclasses.asdict(stats)))

    async def list_runs(self, request: pb.ListRunsRequest) -> pb.ListRunsReply:
        limit = request.limit or DEFAULT_RUN_LIMIT
        if not 0 < limit <= MAX_RUN_LIMIT:
            raise InvalidRequestError(f"limit: must be between 1 and {MAX_RUN_LIMIT}, got {limit}")
        unknown = set(request.statuses) - status.ALL
        if unknown:
            raise InvalidRequestError(f"statuses: unknown {sorted(unknown)}; known: {', '.join(sorted(status.ALL))}")
        until_ms = request.until_ms or request.before_ms
        for name, value in (("since_ms", request.since_ms), ("until_ms", request.until_ms), ("before_ms", request.before_ms)):
            if value < 0:
                raise InvalidRequestError(f"{name}: must not be negative, got {value}")
        if request.since_ms and until_ms and until_ms <= request.since_ms:
            raise InvalidRequestError(f"until_ms: must be after since_ms ({request.since_ms}), got {until_ms}")
        filters = ["runs", request.job_id, request.job_name, sorted(request.statuses), request.since_ms, until_ms]
        older_than = None
        if request.page_token:
            try:
                at, attempt, run_id = paging.decode(request.page_token, filters, (int, int, str))
            except ValidationError as exc:
                raise InvalidRequestError(str(exc)) from None
            older_than = (at, attempt, run_id)
        runs = await self._store.list_runs(
            job_id=request.job_id,
            job_name=request.job_name,
            limit=limit + 1,
            statuses=list(request.statuses),
            since_ms=request.since_ms,
            until_ms=until_ms,
            older_than=older_than,
            with_output=False,
        )
        if not runs and not older_than and (request.job_id or request.job_name):
            # No runs: tell an unknown job (a typo) from a job that has not run yet.
            job = await self._store.get_job(job_id=request.job_id, name=request.job_name)
            if job is None:
                raise NotFoundError(f"no job {request.job_name or request.job_id!r} and no runs of it")
        page, token = paging.page([run_to_pb(r) for r in runs], limit, lambda r: [r.scheduled_ms, r.attempt, r.run_id], filters)
        return pb.ListRunsReply(runs=page, next_page_token=token)

    async def count_runs(self, request: pb.CountRunsRequest) -> pb.CountRunsReply:
        if request.since_ms <= 0:
            raise InvalidRequestError(f"since_ms: required (epoch ms UTC, > 0), got {request.since_ms}")
        if request.until_ms < 0 or (request.until_ms and request.until_ms <= request.since_ms):
            raise InvalidRequestError(f"until_ms: must be 0 or after since_ms ({request.since_ms}), got {request.until_ms}")
        if request.bucket_ms:
            if request.bucket_ms < 0 or not request.until_ms:
                raise InvalidRequestError(f"bucket_ms: needs until_ms and must be > 0, got {request.bucket_ms}")
            if (request.until_ms - request.since_ms) / request.bucket_ms > MAX_COUNT_BUCKETS:
                raise InvalidRequestError(
                    f"bucket_ms: at most {MAX_COUNT_BUCKETS} buckets in the window, got {request.bucket_ms} ms buckets"
                )
            per_bucket = await self._store.count_runs_by_bucket(
                since_ms=request.since_ms,
                until_ms=request.until_ms,
                bucket_ms=request.bucket_ms,
                job_name=request.job_name,
            )
            counts: dict[str, int] = {}
            for in_bucket in per_bucket.values():
                for state, n in in_bucket.items():
                    counts[state] = counts.get(state, 0) + n
            buckets = [pb.CountRunsBucket(start_ms=start, counts=c) for start, c in per_bucket.items()]
            return pb.CountRunsReply(counts=counts, total=sum(counts.values()), buckets=buckets)
        counts = await self._store.count_runs(since_ms=request.since_ms, until_ms=request.until_ms, job_name=request.job_name)
        return pb.CountRunsReply(counts=counts, total=sum(counts.values()))

    async def list_audit(self, request: pb.ListAuditRequest) -> pb.ListAuditReply:
        limit = request.limit or 50
        if not 0 < limit <= MAX_RUN_LIMIT:
            raise InvalidRequestError(f"limit: must be between 1 and {MAX_RUN_LIMIT}, got {limit}")
        entries = await self._store.list_audit(target=request.target, limit=limit, before_id=request.before_id)
        return pb.ListAuditReply(
            entries=[
                pb.AuditEntry(
                    id=e.id, at_ms=e.at_ms, actor=e.actor, action=e.action, target=e.target, before=e.before, after=e.after
                )
                for e in entries
            ]
        )
