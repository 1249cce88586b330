"""A `queue`-policy firing waiting behind a running run, when its job is
paused or deleted meanwhile: it must not run afterwards, and is recorded
skipped with the reason (real trio processes, cronctl as an operator)."""

from __future__ import annotations

import pytest

from testing_support.services import wait_for
from testing_support.trio import Trio

pytestmark = pytest.mark.xdist_group("semantics")


def _queued_then(trio: Trio, name: str, action: str) -> tuple[str, str, int, str]:
    added = trio.cronctl(
        "job", "add", "--name", name, "--spec", "* * * * * *", "--command", "sleep 3; echo ran", "--overlap", "queue"
    )
    assert added.returncode == 0, added.stderr

    def queued() -> str | None:
        rows = trio.sql("SELECT run_id FROM runs WHERE job_name = ? AND status = 'queued'", (name,))
        return str(rows[0][0]) if rows else None

    run_id = wait_for(queued, 20, f"a queued firing of {name}")
    done = trio.cronctl("job", action, name)
    assert done.returncode == 0, done.stderr

    def ended() -> tuple[str, str, int, str] | None:
        row = trio.sql("SELECT status, error, started_ms, executor FROM runs WHERE run_id = ?", (run_id,))[0]
        status, error, started, executor = str(row[0]), str(row[1]), int(row[2] or 0), str(row[3] or "")
        return None if status in ("queued", "pending") else (status, error, started, executor)

    # The running run takes up to 3 s; the queued one is decided when it ends.
    return wait_for(ended, 20, f"the queued run {run_id} to be decided")


def test_a_queued_firing_of_a_paused_job_does_not_run(busy_trio: Trio) -> None:
    status, error, started, executor = _queued_then(busy_trio, "q-pause", "pause")
    assert status == "skipped", (status, error)
    assert "paused" in error and "queued" in error
    assert started == 0 and executor == ""  # never sent to an executor
    busy_trio.cronctl("job", "delete", "q-pause")


def test_a_queued_firing_of_a_deleted_job_does_not_run(busy_trio: Trio) -> None:
    status, error, started, executor = _queued_then(busy_trio, "q-delete", "delete")
    assert status == "skipped", (status, error)
    assert "deleted" in error and "queued" in error
    assert started == 0 and executor == ""
