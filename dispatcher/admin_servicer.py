"""The Admin gRPC service: thin, translates messages and calls domain code."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from crontrio.common import status, task_rules
from crontrio.common.auth import caller_is_admin, current_actor, current_role
from crontrio.common.clock import now_ms
from crontrio.common.convert import job_from_pb, job_to_pb, run_to_pb
from crontrio.common.cron import CronSchedule
from crontrio.common.errors import ValidationError
from crontrio.common.jobs import check_dependencies, schedule_of, validate_job
from crontrio.common.model import TRIGGER_MANUAL, Job, iso_ms, last_attempt, make_run_id
from crontrio.common.registry.base import Registry
from crontrio.common.schedule import Schedule
from crontrio.common.secrets import has_secrets, keep_stored, redact
from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.sql_store import JobExistsError
from crontrio.common.store.users import UserStore
from crontrio.common.task_rules import MAX_TIMEZONE_CHARS, check_spec_length
from crontrio.dispatcher import paging
from crontrio.dispatcher.audit import AuditLog, job_change_json
from crontrio.dispatcher.executor_client import ExecutorClients
from crontrio.dispatcher.firing import FiringRunner
from crontrio.dispatcher.job_sync import JobSync
from crontrio.dispatcher.routing import matching_executors
from crontrio.dispatcher.scheduler import SpawnFn
from crontrio.dispatcher.tail_hub import TailEndedError, TailHub, TailLimitError
from crontrio.dispatcher.users import UserAdmin
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
DEFAULT_RUN_LIMIT = 20
MAX_RUN_LIMIT = 1000
MAX_COUNT_BUCKETS = 1000  # CountRuns: buckets in one window (a chart, not an export)
DEFAULT_JOB_PAGE = 500
MAX_JOB_PAGE = 1000
MAX_PREVIEW = 1000
# PreviewSpec's `after_ms` range: the cron math works from 1900 on, and the
# instants it returns stay within four-digit years.
PREVIEW_MIN_MS = -2_208_988_800_000  # 1900-01-01T00:00:00Z
PREVIEW_MAX_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z


class AdminServicer(UserAdmin, pb_grpc.AdminServicer):
    def __init__(
        self,
        store: AsyncStore,
        users: UserStore,
        schedule: Schedule,
        job_sync: JobSync,
        runner: FiringRunner,
        spawn: SpawnFn,
        clients: ExecutorClients,
        registry: Registry | None = None,
        dispatchers: Callable[[], list[pb.DispatcherInfo]] | None = None,
        tail: TailHub | None = None,
        session_ttl_seconds: int = 43200,
    ) -> None:
        self._store = store
        self._schedule = schedule
        self._sync = job_sync
        self._runner = runner
        self._spawn = spawn
        self._clients = clients
        self._registry = registry
        self._dispatchers = dispatchers or (lambda: [])
        self._audit = AuditLog(store)
        self._tail = tail or TailHub(store, clients)
        # PreviewSpec's work, off the event loop; two threads, so a flood of
        # previews queues here instead of taking every core from firing.
        self._preview_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="preview")
        self._init_users(users, session_ttl_seconds)

    async def _validated(
        self, request: pb.Job, context: grpc.aio.ServicerContext, job_id: int = 0, current: Job | None = None
    ) -> Job:
        """Every field checked, then the dependency graph with all stored jobs.

        A "<redacted>" secret value (a job read back and sent again) keeps
        `current`'s value of that key; without one it is refused.
        """
        try:
            job = validate_job(keep_stored(dataclasses.replace(job_from_pb(request), id=job_id), current))
            if job.after:
                check_dependencies(job, await self._store.list_jobs())
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return job

    def _to_pb(self, job: Job, reveal: bool = False) -> pb.Job:
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

    async def _find(self, ref: pb.JobRef, context: grpc.aio.ServicerContext) -> Job:
        if not ref.id and not ref.name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "job: give an id or a name")
        job = await self._store.get_job(job_id=ref.id, name=ref.name)
        if job is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no job {f'with id {ref.id}' if ref.id else repr(ref.name)}")
        assert job is not None
        return job

    async def CreateJob(self, request: pb.Job, context: grpc.aio.ServicerContext) -> pb.Job:
        job = await self._validated(request, context)
        try:
            stored = await self._store.create_job(job)
        except JobExistsError:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"name: a job named {job.name!r} already exists")
        self._sync.apply(stored)
        log.info("job %s created (id %d): %s %s", stored.name, stored.id, stored.spec, stored.command)
        await self._audit.record("job.create", stored.name, after=job_change_json(None, stored)[1])
        return self._to_pb(stored)

    async def GetJob(self, request: pb.JobRef, context: grpc.aio.ServicerContext) -> pb.Job:
        if request.reveal and not caller_is_admin():
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"reveal: showing secret values requires role admin; token {current_actor()!r} has role {current_role()}",
            )
        job = await self._find(request, context)
        if request.reveal and has_secrets(job):
            log.info("job %s: secret values revealed to %s", job.name, current_actor())
            await self._audit.record("job.reveal", job.name)
        return self._to_pb(job, reveal=request.reveal)

    async def ListJobs(self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext) -> pb.ListJobsReply:
        limit = request.limit or DEFAULT_JOB_PAGE
        if not 0 < limit <= MAX_JOB_PAGE:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"limit: must be between 1 and {MAX_JOB_PAGE} (0 = {DEFAULT_JOB_PAGE}), got {request.limit}",
            )
        if request.order_by not in ("", "id", "name"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"order_by: must be id or name, got {request.order_by!r}")
        if request.next_firings:
            reply = pb.ListJobsReply(jobs=[self._to_pb(job) for _, job in self._schedule.soonest(limit)])
        elif request.names:
            if len(request.names) > limit:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"names: at most {limit} (the limit) at once, got {len(request.names)}"
                )
            found = await self._store.jobs_by_names(list(request.names))
            reply = pb.ListJobsReply(jobs=[self._to_pb(j) for j in found])
        elif request.downstream_of:
            ids = self._sync.dependents_of(request.downstream_of)[:limit]
            found = await self._store.jobs_by_ids(ids) if ids else []
            reply = pb.ListJobsReply(jobs=[self._to_pb(j) for j in sorted(found, key=lambda j: j.name)])
        else:
            reply = await self._list_jobs_page(request, limit, context)
        if request.with_run_stats and reply.jobs:
            await self._fill_run_stats(reply.jobs)
        return reply

    async def _list_jobs_page(
        self, request: pb.ListJobsRequest, limit: int, context: grpc.aio.ServicerContext
    ) -> pb.ListJobsReply:
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
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        jobs = await self._store.list_jobs(
            name_prefix=request.name_prefix,
            after_id=after_id,
            limit=limit + 1,
            tag=request.tag,
            owner=request.owner,
            after_name=after_name,
        )
        cursor: Callable[[pb.Job], list[Any]] = (lambda j: [j.name]) if by_name else (lambda j: [j.id])
        page, token = paging.page([self._to_pb(j) for j in jobs], limit, cursor, filters)
        return pb.ListJobsReply(jobs=page, next_page_token=token, next_after_id=page[-1].id if token and not by_name else 0)

    async def _fill_run_stats(self, listed: Any) -> None:
        """Job.run_stats for a page, from one store query (common/store/run_stats.py)."""
        found = await self._store.job_run_stats([j.id for j in listed])
        for job in listed:
            stats = found.get(job.id)
            if stats is not None:
                job.run_stats.CopyFrom(pb.JobRunStats(**dataclasses.asdict(stats)))

    async def UpdateJob(self, request: pb.Job, context: grpc.aio.ServicerContext) -> pb.Job:
        current = await self._find(pb.JobRef(id=request.id, name=request.name), context)
        job = await self._validated(request, context, job_id=current.id, current=current)
        try:
            stored = await self._store.update_job(job)
        except JobExistsError:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"name: a job named {job.name!r} already exists")
        if stored is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job {current.name!r} was deleted meanwhile")
        assert stored is not None
        self._sync.apply(stored)
        log.info("job %s updated (id %d)", stored.name, stored.id)
        await self._audit.record("job.update", stored.name, *job_change_json(current, stored))
        return self._to_pb(stored)

    async def _set_enabled(self, request: pb.JobRef, context: grpc.aio.ServicerContext, enabled: bool) -> pb.Job:
        job = await self._find(request, context)
        stored = await self._store.set_enabled(job.id, enabled)
        if stored is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job {job.name!r} was deleted meanwhile")
        assert stored is not None
        self._sync.apply(stored)
        log.info("job %s %s", stored.name, "resumed" if enabled else "paused")
        await self._audit.record("job.resume" if enabled else "job.pause", stored.name, *job_change_json(job, stored))
        return self._to_pb(stored)

    async def PauseJob(self, request: pb.JobRef, context: grpc.aio.ServicerContext) -> pb.Job:
        return await self._set_enabled(request, context, False)

    async def ResumeJob(self, request: pb.JobRef, context: grpc.aio.ServicerContext) -> pb.Job:
        return await self._set_enabled(request, context, True)

    async def RunJob(self, request: pb.JobRef, context: grpc.aio.ServicerContext) -> pb.RunJobReply:
        job = await self._find(request, context)
        try:
            job = validate_job(job)
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"job {job.name!r} is invalid: {exc}")
        at = now_ms()
        if at % 1000 == 0:
            at += 1  # never the same id as a scheduled firing (those are whole seconds)
        log.info("job %s run now (manual), as firing %s", job.name, iso_ms(at))
        self._spawn(self._runner.fire(job, at, TRIGGER_MANUAL), f"manual-{job.id}-{at}")
        await self._audit.record("job.run", job.name, after=json.dumps({"run_id": make_run_id(job.id, at, 1)}))
        return pb.RunJobReply(scheduled_ms=at, first_run_id=make_run_id(job.id, at, 1))

    async def KillRun(self, request: pb.RunRef, context: grpc.aio.ServicerContext) -> pb.KillRunReply:
        run = await self._store.get_run(request.run_id)
        if run is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id!r}")
        assert run is not None
        if run.status not in status.ACTIVE:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"run {run.run_id} is not running (it is {run.status})")
        if not run.executor:
            # Not started yet, or sent ahead and held by an executor until its
            # time (dispatch_ahead_ms), possibly by another dispatcher: whoever
            # holds it kills it, the others say they do not have it.
            killed_on = await self._runner.link.kill_anywhere(run.run_id)
            log.info("run %s of job %s: kill requested before it started (%s)", run.run_id, run.job_name, killed_on or "nowhere")
            await self._audit.record("run.kill", run.run_id, after=json.dumps({"killed": bool(killed_on), "job": run.job_name}))
            reason = "" if killed_on else "the run has not reached an executor yet"
            return pb.KillRunReply(killed=bool(killed_on), reason=reason)
        try:
            reply = await self._clients.stub(run.executor).Kill(pb.KillRequest(run_id=run.run_id), timeout=10)
        except grpc.aio.AioRpcError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"executor {run.executor} unreachable: {exc.details()}")
        log.info("run %s of job %s: kill requested on %s (%s)", run.run_id, run.job_name, run.executor, reply.killed)
        reason = "" if reply.killed else f"executor {run.executor} does not have it running"
        await self._audit.record("run.kill", run.run_id, after=json.dumps({"killed": reply.killed, "job": run.job_name}))
        return pb.KillRunReply(killed=reply.killed, reason=reason)

    async def DeleteJob(self, request: pb.JobRef, context: grpc.aio.ServicerContext) -> pb.DeleteJobReply:
        job = await self._find(request, context)
        deleted = await self._store.delete_job(job.id)
        self._sync.forget(job.id)
        log.info("job %s deleted (id %d); its run history is kept", job.name, job.id)
        await self._audit.record("job.delete", job.name, before=job_change_json(job, None)[0])
        return pb.DeleteJobReply(deleted=deleted)

    async def ListRuns(self, request: pb.ListRunsRequest, context: grpc.aio.ServicerContext) -> pb.ListRunsReply:
        limit = request.limit or DEFAULT_RUN_LIMIT
        if not 0 < limit <= MAX_RUN_LIMIT:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"limit: must be between 1 and {MAX_RUN_LIMIT}, got {limit}")
        unknown = set(request.statuses) - status.ALL
        if unknown:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"statuses: unknown {sorted(unknown)}; known: {', '.join(sorted(status.ALL))}"
            )
        until_ms = request.until_ms or request.before_ms
        for name, value in (("since_ms", request.since_ms), ("until_ms", request.until_ms), ("before_ms", request.before_ms)):
            if value < 0:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{name}: must not be negative, got {value}")
        if request.since_ms and until_ms and until_ms <= request.since_ms:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"until_ms: must be after since_ms ({request.since_ms}), got {until_ms}"
            )
        filters = ["runs", request.job_id, request.job_name, sorted(request.statuses), request.since_ms, until_ms]
        older_than = None
        if request.page_token:
            try:
                at, attempt, run_id = paging.decode(request.page_token, filters, (int, int, str))
            except ValidationError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
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
                await context.abort(grpc.StatusCode.NOT_FOUND, f"no job {request.job_name or request.job_id!r} and no runs of it")
        page, token = paging.page([run_to_pb(r) for r in runs], limit, lambda r: [r.scheduled_ms, r.attempt, r.run_id], filters)
        return pb.ListRunsReply(runs=page, next_page_token=token)

    async def CountRuns(self, request: pb.CountRunsRequest, context: grpc.aio.ServicerContext) -> pb.CountRunsReply:
        if request.since_ms <= 0:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"since_ms: required (epoch ms UTC, > 0), got {request.since_ms}"
            )
        if request.until_ms < 0 or (request.until_ms and request.until_ms <= request.since_ms):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"until_ms: must be 0 or after since_ms ({request.since_ms}), got {request.until_ms}",
            )
        if request.bucket_ms:
            if request.bucket_ms < 0 or not request.until_ms:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"bucket_ms: needs until_ms and must be > 0, got {request.bucket_ms}"
                )
            if (request.until_ms - request.since_ms) / request.bucket_ms > MAX_COUNT_BUCKETS:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"bucket_ms: at most {MAX_COUNT_BUCKETS} buckets in the window, got {request.bucket_ms} ms buckets",
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

    async def GetRun(self, request: pb.RunRef, context: grpc.aio.ServicerContext) -> pb.Run:
        run = await self._store.get_run(request.run_id)
        if run is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id!r}")
        assert run is not None
        return run_to_pb(run)

    async def PreviewSpec(self, request: pb.PreviewSpecRequest, context: grpc.aio.ServicerContext) -> pb.PreviewSpecReply:
        # Open to viewers: every input is bounded before any work, and the
        # work (up to ~0.1 s for a sparse spec and the largest count) runs
        # off the event loop, so firings and other calls go on meanwhile.
        count = request.count or 5
        if not 0 < count <= MAX_PREVIEW:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"count: must be between 1 and {MAX_PREVIEW}, got {count}")
        after = request.after_ms or now_ms()
        if not PREVIEW_MIN_MS <= after <= PREVIEW_MAX_MS:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"after_ms: must be between {iso_ms(PREVIEW_MIN_MS)} and {iso_ms(PREVIEW_MAX_MS)}, got {after}",
            )
        try:
            check_spec_length(request.spec)
            if len(request.timezone) > MAX_TIMEZONE_CHARS:
                raise ValidationError("timezone", f"at most {MAX_TIMEZONE_CHARS} characters, got {len(request.timezone)}")
            loop = asyncio.get_running_loop()
            fire_ms = await loop.run_in_executor(
                self._preview_pool, _preview, request.spec, request.timezone or "UTC", after, count, request.job_name
            )
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return pb.PreviewSpecReply(fire_ms=fire_ms)

    async def _validate_only(self, request: pb.Job, context: grpc.aio.ServicerContext) -> pb.Job:
        job = await self._validated(request, context)
        cron = schedule_of(job)
        next_ms = cron.next_after(now_ms()) if cron else None
        return job_to_pb(job, next_ms or 0)

    async def ValidateJob(self, request: pb.Job, context: grpc.aio.ServicerContext) -> pb.Job:
        return await self._validate_only(request, context)

    async def TailRun(self, request: pb.TailRunRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.TailChunk]:
        if not request.follow:
            run = await self._store.get_run(request.run_id)
            if run is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id!r}")
            assert run is not None
            yield pb.TailChunk(data=run.output, status=run.status if run.status not in status.ACTIVE else "")
            return
        # Followers share one feed per run (one Attach upstream, no store poll each).
        try:
            # aclosing: a follower that disconnects leaves the feed at once,
            # not whenever its generator is garbage-collected.
            async with contextlib.aclosing(self._tail.follow(request.run_id)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except TailLimitError as exc:
            log.warning("TailRun of %s by %s refused: %s", request.run_id, current_actor(), exc)
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except TailEndedError as exc:
            await context.abort(exc.code, exc.details)

    async def ListExecutors(self, request: pb.ListExecutorsRequest, context: grpc.aio.ServicerContext) -> pb.ListExecutorsReply:
        live = self._registry.live() if self._registry else []
        if request.target:
            # Routing's own matching; health is left out (a transient state).
            groups = getattr(self._runner, "_machine_groups", {})
            live = matching_executors(Job(name="", spec="", command="", target=request.target), live, groups)
        return pb.ListExecutorsReply(
            executors=[
                pb.ExecutorInfo(
                    address=e.address,
                    group=e.group,
                    host=e.host,
                    labels=e.labels,
                    healthy=e.address not in self._runner.link.unhealthy,
                    running=self._runner.in_flight[e.address],
                    last_seen_ms=self._runner.last_seen.get(e.address, 0),
                )
                for e in sorted(live, key=lambda e: e.address)
            ]
        )

    async def ListDispatchers(
        self, request: pb.ListDispatchersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDispatchersReply:
        return pb.ListDispatchersReply(dispatchers=self._dispatchers())

    async def ListAudit(self, request: pb.ListAuditRequest, context: grpc.aio.ServicerContext) -> pb.ListAuditReply:
        limit = request.limit or 50
        if not 0 < limit <= MAX_RUN_LIMIT:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"limit: must be between 1 and {MAX_RUN_LIMIT}, got {limit}")
        entries = await self._store.list_audit(target=request.target, limit=limit, before_id=request.before_id)
        return pb.ListAuditReply(
            entries=[
                pb.AuditEntry(
                    id=e.id, at_ms=e.at_ms, actor=e.actor, action=e.action, target=e.target, before=e.before, after=e.after
                )
                for e in entries
            ]
        )


def _preview(spec: str, timezone: str, after_ms: int, count: int, job_name: str = "") -> list[int]:
    """PreviewSpec's work, on a worker thread (`job_name`: whose H values to use)."""
    cron = CronSchedule.parse(spec, timezone, hash_key=job_name or "preview")
    try:
        return cron.next_n(after_ms, count)
    except (ValueError, OverflowError) as exc:  # an instant the calendar math cannot reach
        if isinstance(exc, ValidationError):
            raise
        raise ValidationError("after_ms", str(exc)) from None


class ControlServicer(pb_grpc.ControlServicer):
    """What the monitor calls: job-change nudges, executor health, retries of settled runs."""

    def __init__(self, job_sync: JobSync, dispatcher_id: str, runner: FiringRunner, store: AsyncStore, spawn: SpawnFn) -> None:
        self._sync = job_sync
        self._id = dispatcher_id
        self._runner = runner
        self._store = store
        self._spawn = spawn

    async def NotifyJobChanges(self, request: pb.JobChangesNotice, context: grpc.aio.ServicerContext) -> pb.JobChangesAck:
        try:
            revision = await self._sync.catch_up(request.revision)
        except Exception as exc:  # noqa: BLE001 - report, the monitor retries
            log.warning("job sync on notice failed: %s", exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"job sync failed: {exc}")
        return pb.JobChangesAck(revision=revision, dispatcher=self._id)

    async def ReportExecutorHealth(
        self, request: pb.ExecutorHealthReport, context: grpc.aio.ServicerContext
    ) -> pb.ExecutorHealthAck:
        unhealthy = frozenset(request.unhealthy)
        if unhealthy != self._runner.link.unhealthy:
            log.info("executors out of routing (failing health checks): %s", ", ".join(sorted(unhealthy)) or "none")
        self._runner.link.unhealthy = unhealthy
        self._runner.last_seen = dict(request.last_seen_ms)
        return pb.ExecutorHealthAck(dispatcher=self._id)

    async def RetryRun(self, request: pb.RetryRunRequest, context: grpc.aio.ServicerContext) -> pb.RetryRunReply:
        run = await self._store.get_run(request.run_id)
        if run is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id!r}")
        assert run is not None
        job = await self._store.get_job(job_id=run.job_id)
        if job is None or not job.enabled:
            return pb.RetryRunReply(retrying=False, reason="the job was deleted or paused")
        if run.attempt >= last_attempt(job) and not request.never_started:
            return pb.RetryRunReply(retrying=False, reason=f"attempt {run.attempt} was the last of {last_attempt(job)}")
        try:
            job = validate_job(job)
        except ValidationError as exc:
            return pb.RetryRunReply(retrying=False, reason=f"the job is invalid now: {exc}")
        log.info(
            "retrying job %s firing %s as attempt %d (run %s settled as %s)",
            job.name,
            run.scheduled_ms,
            run.attempt + 1,
            run.run_id,
            run.status,
        )
        self._spawn(self._runner.run_firing(job, run.scheduled_ms, run.trigger, run.attempt + 1), f"retry-{run.run_id}")
        return pb.RetryRunReply(retrying=True)
