"""Domain records <-> protobuf messages, in one place."""

from __future__ import annotations

from common.model import (
    KEYWORD_FAIL,
    MISFIRE_SKIP,
    ON_SUCCESS,
    OVERLAP_ALLOW,
    Dependency,
    Job,
    RunRecord,
)
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
        overlap_policy=job.overlap_policy,
        misfire_policy=job.misfire_policy,
        catch_up_window_seconds=job.catch_up_window_seconds,
        retry_backoff=job.retry_backoff,
        retry_max_interval_seconds=job.retry_max_interval_seconds,
        retry_jitter=job.retry_jitter,
        route_strategy=job.route_strategy,
        run_as_user=job.run_as_user,
        follow_redirects=job.follow_redirects,
        skip_tls_verify=job.skip_tls_verify,
        keywords=list(job.keywords),
        keyword_action=job.keyword_action,
        after=[pb.JobDependency(job=d.job, when=d.when) for d in job.after],
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
        # Proto3 zero values mean "not given": the model's defaults apply.
        overlap_policy=msg.overlap_policy or OVERLAP_ALLOW,
        misfire_policy=msg.misfire_policy or MISFIRE_SKIP,
        catch_up_window_seconds=msg.catch_up_window_seconds or Job.catch_up_window_seconds,
        retry_backoff=msg.retry_backoff or 1.0,
        retry_max_interval_seconds=msg.retry_max_interval_seconds,
        retry_jitter=msg.retry_jitter,
        route_strategy=msg.route_strategy or "round_robin",
        run_as_user=msg.run_as_user,
        follow_redirects=msg.follow_redirects,
        skip_tls_verify=msg.skip_tls_verify,
        keywords=tuple(msg.keywords),
        keyword_action=msg.keyword_action or KEYWORD_FAIL,
        after=tuple(Dependency(job=d.job, when=d.when or ON_SUCCESS) for d in msg.after),
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
        shard=run.shard,
        shard_total=run.shard_total,
        trigger=run.trigger,
    )
