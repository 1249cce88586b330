"""The Admin gRPC service: thin, translates messages and calls domain code."""

from __future__ import annotations

import logging
import time

import grpc

from common.convert import job_from_pb, job_to_pb, run_to_pb
from common.cron import CronSchedule
from common.errors import ValidationError
from common.jobs import validate_job
from common.model import Job
from common.schedule import Schedule
from common.store.async_store import DbThreads
from common.store.sql_store import JobExistsError, SqlStore
from dispatcher.firing import FiringRunner
from dispatcher.job_sync import JobSync
from dispatcher.scheduler import SpawnFn
from protos import crontrio_pb2 as pb
from protos import crontrio_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
DEFAULT_RUN_LIMIT = 20
MAX_RUN_LIMIT = 1000
MAX_PREVIEW = 1000


class AdminServicer(pb_grpc.AdminServicer):
    def __init__(self, store: SqlStore, db: DbThreads, schedule: Schedule, job_sync: JobSync) -> None:
        self._store = store
        self._db = db
        self._schedule = schedule
        self._sync = job_sync

    def _to_pb(self, job: Job) -> pb.Job:
        return job_to_pb(job, self._schedule.next_fire_ms(job.id) or 0)

    async def _find(self, ref: pb.JobRef, context: grpc.aio.ServicerContext) -> Job:
        if not ref.id and not ref.name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "job: give an id or a name")
        job = await self._db.run(self._store.get_job, job_id=ref.id, name=ref.name)
        if job is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no job {f'with id {ref.id}' if ref.id else repr(ref.name)}")
        assert job is not None
        return job

    async def CreateJob(self, request: pb.Job, context: grpc.aio.ServicerContext) -> pb.Job:
        try:
            job = validate_job(job_from_pb(request))
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            stored = await self._db.run(self._store.create_job, job)
        except JobExistsError:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"name: a job named {job.name!r} already exists")
        self._sync.apply(stored)
        log.info("job %s created (id %d): %s %s", stored.name, stored.id, stored.spec, stored.command)
        return self._to_pb(stored)

    async def GetJob(self, request: pb.JobRef, context: grpc.aio.ServicerContext) -> pb.Job:
        return self._to_pb(await self._find(request, context))

    async def ListJobs(self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext) -> pb.ListJobsReply:
        jobs = await self._db.run(self._store.list_jobs)
        return pb.ListJobsReply(jobs=[self._to_pb(j) for j in jobs])

    async def DeleteJob(self, request: pb.JobRef, context: grpc.aio.ServicerContext) -> pb.DeleteJobReply:
        job = await self._find(request, context)
        deleted = await self._db.run(self._store.delete_job, job.id)
        self._sync.forget(job.id)
        log.info("job %s deleted (id %d); its run history is kept", job.name, job.id)
        return pb.DeleteJobReply(deleted=deleted)

    async def ListRuns(self, request: pb.ListRunsRequest, context: grpc.aio.ServicerContext) -> pb.ListRunsReply:
        limit = request.limit or DEFAULT_RUN_LIMIT
        if not 0 < limit <= MAX_RUN_LIMIT:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"limit: must be between 1 and {MAX_RUN_LIMIT}, got {limit}")
        runs = await self._db.run(self._store.list_runs, job_id=request.job_id, job_name=request.job_name, limit=limit)
        if not runs and (request.job_id or request.job_name):
            # No runs: tell an unknown job (a typo) from a job that has not run yet.
            job = await self._db.run(self._store.get_job, job_id=request.job_id, name=request.job_name)
            if job is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"no job {request.job_name or request.job_id!r} and no runs of it")
        return pb.ListRunsReply(runs=[run_to_pb(r) for r in runs])

    async def GetRun(self, request: pb.RunRef, context: grpc.aio.ServicerContext) -> pb.Run:
        run = await self._db.run(self._store.get_run, request.run_id)
        if run is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id!r}")
        assert run is not None
        return run_to_pb(run)

    async def PreviewSpec(self, request: pb.PreviewSpecRequest, context: grpc.aio.ServicerContext) -> pb.PreviewSpecReply:
        count = request.count or 5
        if not 0 < count <= MAX_PREVIEW:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"count: must be between 1 and {MAX_PREVIEW}, got {count}")
        try:
            cron = CronSchedule.parse(request.spec, request.timezone or "UTC", hash_key="preview")
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        after = request.after_ms or time.time_ns() // 1_000_000
        return pb.PreviewSpecReply(fire_ms=cron.next_n(after, count))


class ControlServicer(pb_grpc.ControlServicer):
    """What the monitor calls: job-change nudges, executor health, retries of settled runs."""

    def __init__(
        self, job_sync: JobSync, dispatcher_id: str, runner: FiringRunner, store: SqlStore, db: DbThreads, spawn: SpawnFn
    ) -> None:
        self._sync = job_sync
        self._id = dispatcher_id
        self._runner = runner
        self._store = store
        self._db = db
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
        if unhealthy != self._runner.unhealthy:
            log.info("executors out of routing (failing health checks): %s", ", ".join(sorted(unhealthy)) or "none")
        self._runner.unhealthy = unhealthy
        return pb.ExecutorHealthAck(dispatcher=self._id)

    async def RetryRun(self, request: pb.RetryRunRequest, context: grpc.aio.ServicerContext) -> pb.RetryRunReply:
        run = await self._db.run(self._store.get_run, request.run_id)
        if run is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id!r}")
        assert run is not None
        job = await self._db.run(self._store.get_job, job_id=run.job_id)
        if job is None or not job.enabled:
            return pb.RetryRunReply(retrying=False, reason="the job was deleted or paused")
        if run.attempt > job.retries and not request.never_started:
            return pb.RetryRunReply(retrying=False, reason=f"attempt {run.attempt} was the last of {job.retries + 1}")
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
        self._spawn(self._runner.run_attempts(job, run.scheduled_ms, run.attempt + 1), f"retry-{run.run_id}")
        return pb.RetryRunReply(retrying=True)
