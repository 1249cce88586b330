"""Why this executor refuses a Run, or cannot follow one: the errors the run
table raises (executor/servicer.py maps each to its status code from one
table), and the check of a RunRequest before anything of it is journaled
(docs/ARCHITECTURE.md, "The life of a firing", step 8).
"""

from __future__ import annotations

from crontrio.common import task_rules
from crontrio.common.errors import ValidationError
from crontrio.executor.http_task import METHODS
from crontrio.protos import crontrio_pb2

# Above this a tail would not fit a gRPC message comfortably (16 MiB limit).
MAX_OUTPUT_LIMIT_BYTES = 8 * 1024 * 1024


class DrainingError(Exception):
    """The executor is shutting down and refuses new runs."""


class AlreadyAcknowledgedError(Exception):
    """The run already finished here and its result was acknowledged."""

    def __init__(self, run_id: str, acked_ms: int = 0) -> None:
        super().__init__(f"run {run_id} already finished and was acknowledged")
        self.run_id = run_id
        self.acked_ms = acked_ms


class NotJournaledError(Exception):
    """The start of the run could not be journaled, so it was not started:
    without a durable start record, a crash would let a later Run start it a
    second time. The caller may send it elsewhere or later."""

    def __init__(self, run_id: str, cause: str) -> None:
        super().__init__(f"run {run_id} not started: this executor cannot journal it ({cause})")
        self.run_id = run_id


class RunNotFoundError(Exception):
    """Attach: this executor is not running the run and holds no result of it."""

    def __init__(self, run_id: str, why: str = "is not running here and has no unacknowledged result") -> None:
        super().__init__(f"run {run_id} {why}")
        self.run_id = run_id


def validate_request(req: crontrio_pb2.RunRequest) -> None:
    """Raise ValidationError naming the first bad field of a RunRequest.

    The task's fields follow common.task_rules, the same rules the admin API
    applies to jobs: a run refused here was refused there too.
    """
    if not req.run_id:
        raise ValidationError("run_id", "required")
    if req.timeout_seconds < 0:
        raise ValidationError("timeout_seconds", f"must not be negative, got {req.timeout_seconds:g}")
    if not 0 <= req.output_limit_bytes <= MAX_OUTPUT_LIMIT_BYTES:
        raise ValidationError(
            "output_limit_bytes", f"must be between 0 and {MAX_OUTPUT_LIMIT_BYTES}, got {req.output_limit_bytes}"
        )
    if req.keywords:
        task_rules.check_keywords(req.keywords)
    task = req.WhichOneof("task")
    if task is None:
        raise ValidationError("task", "a shell or http task is required")
    if task == "shell":
        shell = req.shell
        task_rules.check_command(shell.command, "shell.command")
        if shell.env:
            task_rules.check_env(shell.env, "shell.env")
        task_rules.check_user(shell.user, "shell.user")
        task_rules.check_workdir(shell.workdir, "shell.workdir")
        return
    http = req.http
    task_rules.check_url_text(http.url, "http.url")
    if (http.method or "GET").upper() not in METHODS:
        raise ValidationError("http.method", f"expected GET or POST, got {http.method!r}")
    if http.headers:
        task_rules.check_headers(http.headers, "http.headers")
    task_rules.check_body(http.body, "http.body")
    task_rules.check_expected_statuses(http.expected_statuses, "http.expected_statuses")
