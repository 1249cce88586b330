"""The domain records: a job definition and a run of it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

SHELL = "shell"
HTTP = "http"
TASK_TYPES = (SHELL, HTTP)
HTTP_METHODS = ("GET", "POST")

# What to do when a firing comes while the job's previous run is still going.
OVERLAP_ALLOW, OVERLAP_SKIP, OVERLAP_QUEUE, OVERLAP_REPLACE = "allow", "skip", "queue", "replace"
OVERLAP_POLICIES = (OVERLAP_ALLOW, OVERLAP_SKIP, OVERLAP_QUEUE, OVERLAP_REPLACE)
# Firings missed while every dispatcher was down.
MISFIRE_SKIP, MISFIRE_RUN_ONCE, MISFIRE_RUN_ALL = "skip", "run_once", "run_all"
MISFIRE_POLICIES = (MISFIRE_SKIP, MISFIRE_RUN_ONCE, MISFIRE_RUN_ALL)
# What a run's timeout does (gocron's treatments): kill the task, or record
# it as overrunning, alert once, and follow it to its real end.
TIMEOUT_KILL, TIMEOUT_ALERT = "kill", "alert"
TIMEOUT_ACTIONS = (TIMEOUT_KILL, TIMEOUT_ALERT)
KEYWORD_FAIL, KEYWORD_NOTIFY = "fail", "notify"
KEYWORD_ACTIONS = (KEYWORD_FAIL, KEYWORD_NOTIFY)
ON_SUCCESS, ON_FAILURE, ALWAYS = "on_success", "on_failure", "always"
DEPENDENCY_CONDITIONS = (ON_SUCCESS, ON_FAILURE, ALWAYS)
ROUTE_STRATEGIES = (
    "round_robin",
    "random",
    "first",
    "least_busy",
    "consistent_hash",
    "failover",
    "broadcast",
    "sharded",
)
FAN_OUT_STRATEGIES = ("broadcast", "sharded")
# When a job's runs raise alerts.
NOTIFY_NEVER, NOTIFY_ON_FAILURE, NOTIFY_ALWAYS, NOTIFY_ON_KEYWORD = "never", "on_failure", "always", "on_keyword"
NOTIFY_POLICIES = (NOTIFY_NEVER, NOTIFY_ON_FAILURE, NOTIFY_ALWAYS, NOTIFY_ON_KEYWORD)
ALERT_CHANNELS = ("email", "sms", "webhook")
# Misfire catch-up looks back this far unless a job says otherwise.
DEFAULT_CATCH_UP_WINDOW_SECONDS = 3600.0
# How a firing came about (runs.trigger).
TRIGGER_SCHEDULE, TRIGGER_MANUAL, TRIGGER_CATCH_UP = "schedule", "manual", "catch_up"


@dataclass(frozen=True, slots=True)
class Dependency:
    """Run the owning job after `job` ends, when its outcome matches `when`."""

    job: str
    when: str = ON_SUCCESS


@dataclass(frozen=True, slots=True)
class Job:
    """A scheduled job as stored. Fields a plain-SQL insert may omit have defaults.

    Slotted: a dispatcher holds every enabled job, and without slots each
    one's attribute dict cost about 2 KB (200 MB at 100,000 jobs). Slots also
    mean the class has no attributes holding the defaults: use the constants.
    """

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
    timeout_action: str = TIMEOUT_KILL
    retries: int = 0
    retry_interval_seconds: float = 0.0
    enabled: bool = True
    target: str = ""
    workdir: str = ""
    env: dict[str, str] = field(default_factory=dict)
    overlap_policy: str = OVERLAP_ALLOW
    misfire_policy: str = MISFIRE_SKIP
    catch_up_window_seconds: float = DEFAULT_CATCH_UP_WINDOW_SECONDS
    retry_backoff: float = 1.0
    retry_max_interval_seconds: float = 0.0
    retry_jitter: float = 0.0
    route_strategy: str = "round_robin"
    run_as_user: str = ""
    follow_redirects: bool = False
    skip_tls_verify: bool = False
    keywords: tuple[str, ...] = ()
    keyword_action: str = KEYWORD_FAIL
    after: tuple[Dependency, ...] = ()
    notify_policy: str = NOTIFY_NEVER
    notify_channels: tuple[str, ...] = ()  # empty = every configured channel
    notify_emails: tuple[str, ...] = ()  # addresses or [alarm_mail_list] names
    notify_phones: tuple[str, ...] = ()
    # Descriptive only (never change when or how the job runs): what it is
    # for, who answers for it, and labels to find it by (`job list --tag`).
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()
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
    shard: int = 0
    shard_total: int = 0
    trigger: str = TRIGGER_SCHEDULE
    # When the run was found past its job's timeout under timeout_action
    # "alert" (it was not killed; its status stays running until it ends);
    # 0 = never overran. Set once, by a conditional update (store.mark_overrun).
    overrun_ms: int = 0


@dataclass(frozen=True)
class AuditEntry:
    """One change made through the API: who, what, when, before/after (JSON)."""

    at_ms: int
    actor: str
    action: str
    target: str
    before: str = ""
    after: str = ""
    id: int = 0


def last_attempt(job: Job) -> int:
    """The number of `job`'s last attempt at one firing: the first try plus its retries.
    The one rule for "no retry after this", whether the dispatcher retries at
    once or the monitor asks it to retry a run that settled while it was away."""
    return job.retries + 1


def make_run_id(job_id: int, scheduled_ms: int, attempt: int, shard: int = 0) -> str:
    """Deterministic: every dispatcher derives the same id for the same run.
    Shards of broadcast/sharded jobs get a suffix (.1, .2, ...) after shard 0."""
    base = f"{job_id}-{scheduled_ms}-{attempt}"
    return base if shard == 0 else f"{base}.{shard}"


def parse_run_id(run_id: str) -> tuple[int, int, int, int]:
    """(job_id, scheduled_ms, attempt, shard) of a run id."""
    base, _, shard = run_id.partition(".")
    job_id, scheduled_ms, attempt = base.split("-")
    return int(job_id), int(scheduled_ms), int(attempt), int(shard or 0)


def iso_ms(ms: int | None) -> str:
    """An epoch-ms instant for log lines: ISO 8601 UTC."""
    if ms is None:
        return "never"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def firing_id(job_id: int, scheduled_ms: int) -> str:
    """The claim key of one firing: every dispatcher derives the same one."""
    return f"{job_id}:{scheduled_ms}"
