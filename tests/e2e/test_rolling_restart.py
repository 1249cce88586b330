"""Executors restarted or killed under every-second jobs: a run that never
started moves to the other executor, none fails, none runs twice.

Real processes: two executors, a dispatcher and a monitor (embedded mode).
Each job appends its run id to a file, so "ran once" is what the task saw,
not what the database says.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

from testing_support.services import wait_for
from testing_support.trio import Trio, make_trio, stop_trio

JOBS = ("roll-a", "roll-b", "roll-c")


def _start(tmp_path: Path) -> Trio:
    # Health checks at their default pace: the dispatcher keeps routing to an
    # executor for up to 2 s after it went away.
    trio = make_trio(tmp_path, executors=2, extra={"monitor": {"health_interval_seconds": "2"}})
    for service in ("executor", "executor2", "dispatcher", "monitor"):
        trio.start(service)
    ran = tmp_path / "ran.txt"
    for name in JOBS:
        added = trio.cronctl(
            "job", "add", "--name", name, "--spec", "* * * * * *", "--command", f'echo "$CRONTRIO_RUN_ID" >> {ran}'
        )
        assert added.returncode == 0, added.stderr
    return trio


def _rows(trio: Trio) -> list[tuple[str, str, int, int, str, str]]:
    rows = trio.sql(
        "SELECT run_id, job_name, scheduled_ms, attempt, status, executor || ' ' || error FROM runs "
        "WHERE job_name IN (?, ?, ?) ORDER BY scheduled_ms",
        JOBS,
    )
    return [(str(r[0]), str(r[1]), int(r[2]), int(r[3]), str(r[4]), str(r[5])) for r in rows]


def _succeeded_on(trio: Trio, address: str, since_ms: int) -> int:
    rows = trio.sql(
        "SELECT COUNT(*) FROM runs WHERE status = 'succeeded' AND executor = ? AND started_ms > ?", (address, since_ms)
    )
    return int(rows[0][0])


def _settle(trio: Trio) -> list[tuple[str, str, int, int, str, str]]:
    """Pause the jobs, then wait until none of their runs is still going."""
    for name in JOBS:
        assert trio.cronctl("job", "pause", name).returncode == 0

    def settled() -> list[tuple[str, str, int, int, str, str]] | None:
        rows = _rows(trio)
        return None if any(r[4] in ("pending", "running", "queued") for r in rows) else rows

    return wait_for(settled, 30, "every run of the jobs to end")


def _ran_once(trio: Trio, rows: list[tuple[str, str, int, int, str, str]]) -> None:
    ran = Counter((trio.root / "ran.txt").read_text().split())
    twice = {run_id: n for run_id, n in ran.items() if n > 1}
    assert not twice, f"runs executed more than once: {twice}"
    succeeded = {r[0] for r in rows if r[4] == "succeeded"}
    assert set(ran) == succeeded, (set(ran) ^ succeeded, rows)


def _every_second_once(rows: list[tuple[str, str, int, int, str, str]], start_ms: int, end_ms: int) -> None:
    """Between start and end each job fired at every second, exactly once, with attempt 1."""
    for name in JOBS:
        seconds = [r[2] for r in rows if r[1] == name and start_ms <= r[2] <= end_ms]
        assert len(seconds) == len(set(seconds)), f"{name}: a firing recorded twice"
        assert seconds and seconds == list(range(seconds[0], seconds[-1] + 1000, 1000)), f"{name}: a gap {seconds}"
    assert all(r[3] == 1 for r in rows), [r for r in rows if r[3] != 1]


def test_rolling_sigterm_restart_of_each_executor_fails_no_run(tmp_path: Path) -> None:
    trio = _start(tmp_path)
    try:
        wait_for(lambda: len([r for r in _rows(trio) if r[4] == "succeeded"]) >= 6, 30, "runs to flow")
        begin_ms = time.time_ns() // 1_000_000
        pairs = (("executor", trio.executor, trio.executor2), ("executor2", trio.executor2, trio.executor))
        for name, address, other in pairs:
            # Just before the next second's firings are sent ahead: some are
            # routed to it while it drains, before the monitor sees it go.
            wait_for(lambda: 0.85 < time.time() % 1 < 0.95, 5, "the end of a second", interval=0.005)
            assert trio.procs[name].stop() == 0, trio.procs[name].log_text()
            # Down for a few firings, as while a new version is installed.
            stopped_ms = time.time_ns() // 1_000_000
            wait_for(lambda o=other, t=stopped_ms: _succeeded_on(trio, o, t) >= 6, 30, f"runs while {name} is down")
            restarted_ms = time.time_ns() // 1_000_000
            trio.start(name)
            # Back in service: it runs firings again before the next one goes down.
            wait_for(lambda a=address, t=restarted_ms: _succeeded_on(trio, a, t) >= 3, 30, f"{name} to take runs again")
        end_ms = time.time_ns() // 1_000_000
        rows = _settle(trio)
        bad = [r for r in rows if r[4] not in ("succeeded", "skipped")]
        assert not bad, f"runs that did not succeed during the rolling restart: {bad}"
        _every_second_once(rows, begin_ms, end_ms)
        _ran_once(trio, rows)
    finally:
        stop_trio(trio)


def test_kill_9_of_an_executor_moves_its_runs_sent_ahead_to_the_other(tmp_path: Path) -> None:
    trio = _start(tmp_path)
    try:
        wait_for(
            lambda: _succeeded_on(trio, trio.executor, 0) >= 2 and _succeeded_on(trio, trio.executor2, 0) >= 2, 30, "both busy"
        )
        # Mid-second: the runs of the last second are over (they only echo),
        # those of the next one are sent ahead (dispatch_ahead_ms = 1000) and held.
        wait_for(lambda: 0.45 < time.time() % 1 < 0.6, 5, "the middle of a second", interval=0.005)
        kill_ms = time.time_ns() // 1_000_000
        trio.procs["executor"].kill()
        after = kill_ms + 4000
        wait_for(lambda: max(r[2] for r in _rows(trio)) > after, 30, "firings after the kill")
        rows = _settle(trio)
        later = [r for r in rows if r[2] > kill_ms]
        bad = [r for r in later if r[4] not in ("succeeded", "skipped")]
        assert not bad, f"firings due after the kill -9 did not run: {bad}"
        held = [r for r in later if r[2] < kill_ms + 1000]
        assert held and all(r[4] == "succeeded" and trio.executor2 in r[5] for r in held), held
        assert "never started there" in trio.procs["dispatcher"].log_text()  # some had been sent to the killed one
        _every_second_once(rows, kill_ms, after)
        _ran_once(trio, rows)
        # Back up, the killed executor records the runs it held as lost in its
        # own journal: that must change nothing of what the other one ran.
        trio.start("executor")
        assert [r for r in _rows(trio) if r[2] > kill_ms] == later
    finally:
        stop_trio(trio)


def test_a_draining_executor_moves_sharded_runs_and_skips_its_broadcast_ones(tmp_path: Path) -> None:
    trio = make_trio(tmp_path, executors=2, extra={"monitor": {"health_interval_seconds": "2"}})
    for service in ("executor", "executor2", "dispatcher", "monitor"):
        trio.start(service)
    try:
        for name, route in (("fan-shard", "sharded"), ("fan-all", "broadcast")):
            added = trio.cronctl("job", "add", "--name", name, "--spec", "* * * * * *", "--route", route, "--command", "true")
            assert added.returncode == 0, added.stderr
        wait_for(lambda: len(trio.sql("SELECT 1 FROM runs WHERE status = 'succeeded'")) >= 8, 30, "runs to flow")
        wait_for(lambda: 0.85 < time.time() % 1 < 0.95, 5, "the end of a second", interval=0.005)
        stopped_ms = time.time_ns() // 1_000_000
        assert trio.procs["executor"].stop() == 0
        # Firings while it drains and until the monitor takes it out of routing.
        wait_for(lambda: _succeeded_on(trio, trio.executor2, stopped_ms + 4000) >= 2, 30, "firings after the stop")
        for name in ("fan-shard", "fan-all"):
            assert trio.cronctl("job", "pause", name).returncode == 0

        def settled() -> list[tuple[object, ...]] | None:
            rows = trio.sql(
                "SELECT job_name, run_id, status, executor, error FROM runs WHERE scheduled_ms > ? AND status != 'skipped' "
                "OR scheduled_ms > ? AND job_name = 'fan-all'",
                (stopped_ms, stopped_ms),
            )
            return None if any(r[2] in ("pending", "running") for r in rows) else rows

        rows = wait_for(settled, 30, "the firings after the stop to end")
        sharded = [r for r in rows if r[0] == "fan-shard"]
        assert sharded and all(r[2] == "succeeded" for r in sharded), sharded  # every shard ran, somewhere
        broadcast = [r for r in rows if r[0] == "fan-all"]
        assert all(r[2] in ("succeeded", "skipped") for r in broadcast), broadcast  # never failed
        skipped = [r for r in broadcast if r[2] == "skipped" and "broadcast runs on the executors that are up" in str(r[4])]
        # The firings held on it when it stopped were handed back: sharded moved, broadcast skipped.
        assert skipped, broadcast
        assert re.search(r"job fan-shard run \S+ never started there", trio.procs["dispatcher"].log_text())
    finally:
        stop_trio(trio)


def test_a_lone_executor_restarted_runs_what_it_handed_back_late_but_not_failed(tmp_path: Path) -> None:
    # One executor, no monitor: nothing takes it out of routing while it restarts.
    trio = make_trio(tmp_path)
    for service in ("executor", "dispatcher"):
        trio.start(service)
    ran = tmp_path / "ran.txt"
    try:
        for name in JOBS[:2]:
            added = trio.cronctl(
                "job", "add", "--name", name, "--spec", "* * * * * *", "--command", f'echo "$CRONTRIO_RUN_ID" >> {ran}'
            )
            assert added.returncode == 0, added.stderr
        wait_for(lambda: _succeeded_on(trio, trio.executor, 0) >= 4, 30, "runs to flow")
        begin_ms = time.time_ns() // 1_000_000
        assert trio.procs["executor"].stop() == 0
        restarted_ms = time.time_ns() // 1_000_000
        trio.start("executor")
        wait_for(lambda: _succeeded_on(trio, trio.executor, restarted_ms + 3000) >= 2, 30, "runs after the restart")
        end_ms = time.time_ns() // 1_000_000
        for name in JOBS[:2]:
            assert trio.cronctl("job", "pause", name).returncode == 0

        def settled() -> list[tuple[object, ...]] | None:
            rows = trio.sql(
                "SELECT run_id, job_name, scheduled_ms, status, error FROM runs WHERE scheduled_ms BETWEEN ? AND ?",
                (begin_ms, end_ms),
            )
            return None if any(r[3] in ("pending", "running") for r in rows) else rows

        rows = wait_for(settled, 30, "the firings of the restart to end")
        bad = [r for r in rows if r[3] != "succeeded"]
        assert not bad, f"firings that did not run across the restart: {bad}"
        assert "handed back" in trio.procs["executor"].log_text()  # it stopped holding firings sent ahead
        executed = Counter(ran.read_text().split())
        assert not {k: n for k, n in executed.items() if n > 1}, "a run executed twice"
        assert {str(r[0]) for r in rows} <= set(executed)
    finally:
        stop_trio(trio)
