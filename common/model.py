"""The domain records: a job definition and a run of it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

SHELL = "shell"
HTTP = "http"
TASK_TYPES = (SHELL, HTTP)
HTTP_METHODS = ("GET", "POST")


@dataclass(frozen=True)
class Job:
    """A scheduled job as stored. Fields a plain-SQL insert may omit have defaults."""

    name: str
    spec: str
    command: str
    id: int = 0
    timezone: str = "UTC"
    type: str = SHELL
    http_method: str = "GET"
    http_headers: dict[str, str] = field(default_factory=dict)
    http_body: str = ""
    expected_statuses: tuple[int, ...] = ()
    timeout_seconds: float = 0.0
    retries: int = 0
    retry_interval_seconds: float = 0.0
    enabled: bool = True
    target: str = ""
    workdir: str = ""
    env: dict[str, str] = field(default_factory=dict)
    created_ms: int = 0
    updated_ms: int = 0
    # Set by the store for a row it cannot read (e.g. broken JSON written by
    # hand); such a job is listed but never scheduled.
    defect: str = ""

    def schedule_key(self) -> tuple[str, str, bool]:
        """What decides when the job fires; a change here re-plans its next firing."""
        return (self.spec, self.timezone, self.enabled)


@dataclass
class RunRecord:
    """One attempt of one firing. run_id is deterministic: job-scheduled_ms-attempt."""

    run_id: str
    job_id: int
    job_name: str
    scheduled_ms: int
    attempt: int
    status: str
    dispatcher: str = ""
    executor: str = ""
    host: str = ""
    pid: int = 0
    exit_code: int = 0
    started_ms: int = 0
    finished_ms: int = 0
    output: bytes = b""
    output_truncated: bool = False
    error: str = ""
    created_ms: int = 0
    updated_ms: int = 0


def make_run_id(job_id: int, scheduled_ms: int, attempt: int) -> str:
    return f"{job_id}-{scheduled_ms}-{attempt}"


def iso_ms(ms: int | None) -> str:
    """An epoch-ms instant for log lines: ISO 8601 UTC."""
    if ms is None:
        return "never"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def firing_id(job_id: int, scheduled_ms: int) -> str:
    """The claim key of one firing: every dispatcher derives the same one."""
    return f"{job_id}:{scheduled_ms}"
