"""Run status values: the one place they are spelled."""

from __future__ import annotations

PENDING = "pending"  # claimed and recorded, not yet started on an executor
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
TIMEOUT = "timeout"
KILLED = "killed"
LOST = "lost"  # the executor or the connection to it went away mid-run
MISSED = "missed"  # a firing nobody ran (e.g. every dispatcher was down)
SKIPPED = "skipped"  # deliberately not run (overlap policy)
QUEUED = "queued"  # waiting for the job's running run to end (overlap policy "queue")
# An executor's answer, never a run's recorded status: it handed the run back
# without starting it (it was shutting down), so the dispatcher sends it elsewhere.
NOT_STARTED = "not_started"
# The same answer to a Run the executor refused without accepting it: this
# trailing metadata key (value: why, e.g. "draining") on its UNAVAILABLE status.
NOT_STARTED_METADATA = "crontrio-not-started"

ACTIVE = frozenset({PENDING, RUNNING})
FINISHED = frozenset({SUCCEEDED, FAILED, TIMEOUT, KILLED, LOST, MISSED, SKIPPED})
# Outcomes that may be retried per the job's retry policy.
RETRYABLE = frozenset({FAILED, TIMEOUT, LOST})
ALL = ACTIVE | FINISHED | {QUEUED}
