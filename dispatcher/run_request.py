"""What a dispatcher sends an executor for one run: the RunRequest built from
the job and the run's record, with the part every run of a job shares
serialized once (dispatcher/firing.py caches it per job).
"""

from __future__ import annotations

from crontrio.common.model import HTTP, TIMEOUT_ALERT, Job, RunRecord
from crontrio.protos import crontrio_pb2 as pb


def build_run_request(job: Job, record: RunRecord, template: bytes | None = None) -> pb.RunRequest:
    """The RunRequest of one run. `template` (from `request_template`) is the
    serialized part every run of `job` shares: building the task's maps from
    Python dicts cost more than anything else per run at 1,000 runs/s."""
    if template is not None:
        request = pb.RunRequest.FromString(template)
        request.run_id = record.run_id
        request.scheduled_ms = record.scheduled_ms
        request.attempt = record.attempt
        return request
    request = pb.RunRequest(
        run_id=record.run_id,
        job_id=job.id,
        job_name=job.name,
        scheduled_ms=record.scheduled_ms,
        attempt=record.attempt,
        # timeout_action alert: the executor must not kill it (its timeout
        # only ever kills); this dispatcher's overrun timer notices instead.
        timeout_seconds=job.timeout_seconds if job.timeout_action != TIMEOUT_ALERT else 0.0,
        keywords=list(job.keywords),
    )
    if job.type == HTTP:
        request.http.CopyFrom(
            pb.HttpTask(
                url=job.command,
                method=job.http_method,
                headers=job.http_headers,
                body=job.http_body,
                expected_statuses=list(job.expected_statuses),
                follow_redirects=job.follow_redirects,
                skip_tls_verify=job.skip_tls_verify,
            )
        )
    else:
        env = dict(job.env)
        if job.route_strategy == "sharded":
            env["CRONTRIO_SHARD_INDEX"] = str(record.shard)
            env["CRONTRIO_SHARD_TOTAL"] = str(record.shard_total)
        request.shell.CopyFrom(pb.ShellTask(command=job.command, workdir=job.workdir, env=env, user=job.run_as_user))
    return request


def request_template(job: Job) -> bytes | None:
    """What every run of `job` sends alike, serialized; None for a job whose
    runs differ beyond the run's own fields (sharded: the shard's env)."""
    if job.route_strategy == "sharded":
        return None
    blank = RunRecord(run_id="", job_id=job.id, job_name=job.name, scheduled_ms=0, attempt=0, status="")
    return build_run_request(job, blank).SerializeToString()
