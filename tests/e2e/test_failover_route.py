"""route failover: an unreachable executor costs nothing, the run moves on."""

from __future__ import annotations

from pathlib import Path

from testing_support.services import wait_for
from testing_support.trio import make_trio, stop_trio


def test_failover_moves_past_a_dead_executor(tmp_path: Path) -> None:
    trio = make_trio(tmp_path, executors=2)
    try:
        trio.start("executor")  # executor2 is configured but never started, and no monitor marks it down
        trio.start("dispatcher")
        for name, route in (("fo", "failover"), ("rr", "round_robin")):
            added = trio.cronctl("job", "add", "--name", name, "--spec", "* * * * * *", "--route", route, "--command", "true")
            assert added.returncode == 0, added.stderr

        def statuses(job: str) -> list[str] | None:
            rows = trio.sql("SELECT status FROM runs WHERE job_name = ? AND status NOT IN ('pending', 'running')", (job,))
            return [str(r[0]) for r in rows] if len(rows) >= 4 else None

        assert set(wait_for(lambda: statuses("fo"), 30, "four failover runs")) == {"succeeded"}
        # Without failover some runs are sent to the dead executor: they never
        # reached it, so they move on as well (README, rolling restarts).
        assert set(wait_for(lambda: statuses("rr"), 30, "four round-robin runs")) == {"succeeded"}
        assert "was not reached" in trio.procs["dispatcher"].log_text()
    finally:
        stop_trio(trio)
