"""Domain records <-> protobuf messages, in one place."""

from __future__ import annotations

from common.model import Job, RunRecord
from protos import crontrio_pb2 as pb


def job_to_pb(job: Job, next_fire_ms: int = 0) -> pb.Job:
    return pb.Job(
        id=job.id,
        name=job.name,
        spec=job.spec,
        timezone=job.timezone,
        type=job.type,
        command=job.command,
        http_method=job.http_method,
        http_headers=job.http_headers,
        http_body=job.http_body,
        expected_statuses=list(job.expected_statuses),
        timeout_seconds=job.timeout_seconds,
        retries=job.retries,
        retry_interval_seconds=job.retry_interval_seconds,
        paused=not job.enabled,
        target=job.target,
        created_ms=job.created_ms,
        updated_ms=job.updated_ms,
        next_fire_ms=next_fire_ms,
        workdir=job.workdir,
        env=job.env,
    )


def job_from_pb(msg: pb.Job) -> Job:
    return Job(
        id=msg.id,
        name=msg.name,
        spec=msg.spec,
        timezone=msg.timezone or "UTC",
        type=msg.type or "shell",
        command=msg.command,
        http_method=msg.http_method or "GET",
        http_headers=dict(msg.http_headers),
        http_body=msg.http_body,
        expected_statuses=tuple(msg.expected_statuses),
        timeout_seconds=msg.timeout_seconds,
        retries=msg.retries,
        retry_interval_seconds=msg.retry_interval_seconds,
        enabled=not msg.paused,
        target=msg.target,
        workdir=msg.workdir,
        env=dict(msg.env),
        created_ms=msg.created_ms,
        updated_ms=msg.updated_ms,
    )


def run_to_pb(run: RunRecord) -> pb.Run:
    return pb.Run(
        run_id=run.run_id,
        job_id=run.job_id,
        job_name=run.job_name,
        scheduled_ms=run.scheduled_ms,
        attempt=run.attempt,
        status=run.status,
        executor=run.executor,
        host=run.host,
        dispatcher=run.dispatcher,
        pid=run.pid,
        exit_code=run.exit_code,
        started_ms=run.started_ms,
        finished_ms=run.finished_ms,
        output=run.output,
        output_truncated=run.output_truncated,
        error=run.error,
        created_ms=run.created_ms,
    )
