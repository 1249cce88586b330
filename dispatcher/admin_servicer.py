"""The Admin gRPC service: thin, translates messages and calls domain code."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc

from crontrio.common import status
from crontrio.common.auth import caller_is_admin, current_actor, current_role
from crontrio.common.clock import now_ms
from crontrio.common.convert import job_from_pb, job_to_pb, run_to_pb
from crontrio.common.cron import CronSchedule
from crontrio.common.errors import ValidationError
from crontrio.common.jobs import check_dependencies, schedule_of, validate_job
from crontrio.common.model import TRIGGER_MANUAL, Job, iso_ms, last_attempt, make_run_id
from crontrio.common.registry.base import Registry
from crontrio.common.schedule import Schedule
from crontrio.common.secrets import has_secrets, keep_stored
from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.async_users import AsyncUserStore
from crontrio.common.store.sql_store import JobExistsError
from crontrio.common.task_rules import MAX_TIMEZONE_CHARS, check_spec_length
from crontrio.dispatcher.audit import AuditLog, job_change_json
from crontrio.dispatcher.executor_client import ExecutorClients
from crontrio.dispatcher.firing import FiringRunner
from crontrio.dispatcher.job_sync import JobSync
from crontrio.dispatcher.listing import InvalidRequestError, Listing, NotFoundError
from crontrio.dispatcher.routing import matching_executors
from crontrio.dispatcher.scheduler import SpawnFn
from crontrio.dispatcher.tail_hub import TailEndedError, TailHub, TailLimitError
from crontrio.dispatcher.users import UserAdmin
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
R = TypeVar("R")
MAX_PREVIEW = 1000
# PreviewSpec's `after_ms` range: the cron math works from 1900 on, and the
# instants it returns stay within four-digit years.
PREVIEW_MIN_MS = -2_208_988_800_000  # 1900-01-01T00:00:00Z
PREVIEW_MAX_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z


class AdminServicer(UserAdmin, pb_grpc.AdminServicer):
    def __init__(
        self,
        store: AsyncStore,
        users: AsyncUserStore,
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
        self._listing = Listing(store, schedule, job_sync)
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
        return self._listing.job_reply(stored)

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
        return self._listing.job_reply(job, reveal=request.reveal)

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
        return self._listing.job_reply(stored)

    async def _set_enabled(self, request: pb.JobRef, context: grpc.aio.ServicerContext, enabled: bool) -> pb.Job:
        job = await self._find(request, context)
        stored = await self._store.set_enabled(job.id, enabled)
        if stored is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job {job.name!r} was deleted meanwhile")
        assert stored is not None
        self._sync.apply(stored)
        log.info("job %s %s", stored.name, "resumed" if enabled else "paused")
        await self._audit.record("job.resume" if enabled else "job.pause", stored.name, *job_change_json(job, stored))
        return self._listing.job_reply(stored)

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

    async def ListJobs(self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext) -> pb.ListJobsReply:
        return await _answer(context, self._listing.list_jobs(request))

    async def ListRuns(self, request: pb.ListRunsRequest, context: grpc.aio.ServicerContext) -> pb.ListRunsReply:
        return await _answer(context, self._listing.list_runs(request))

    async def CountRuns(self, request: pb.CountRunsRequest, context: grpc.aio.ServicerContext) -> pb.CountRunsReply:
        return await _answer(context, self._listing.count_runs(request))

    async def ListAudit(self, request: pb.ListAuditRequest, context: grpc.aio.ServicerContext) -> pb.ListAuditReply:
        return await _answer(context, self._listing.list_audit(request))


async def _answer(context: grpc.aio.ServicerContext, reading: Coroutine[Any, Any, R]) -> R:
    """The reply `reading` makes, its refusals as gRPC status codes."""
    try:
        return await reading
    except InvalidRequestError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    except NotFoundError as exc:
        await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
    raise AssertionError("context.abort raises")


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
