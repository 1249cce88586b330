"""A monitor started on a conf with tiny retention prunes the real store:
at start, and again on its interval, keeping each job's newest runs and
every unfinished one."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from crontrio.common.config import load_config
from testing_support.services import wait_for
from testing_support.trio import Trio, make_trio, stop_trio

DAY_MS = 24 * 3600 * 1000
COLUMNS = (
    "run_id, job_id, job_name, scheduled_ms, attempt, status, dispatcher, executor, host, pid, exit_code,"
    " started_ms, finished_ms, output, output_truncated, error, created_ms, updated_ms, shard, shard_total, `trigger`"
)


def add_runs(t: Trio, job_id: int, ages_days: list[float], state: str = "succeeded") -> list[str]:
    now = time.time_ns() // 1_000_000
    ids = []
    for age in ages_days:
        scheduled = now - int(age * DAY_MS)
        run_id = f"{job_id}-{scheduled}-1"
        t.sql(
            f"INSERT INTO runs ({COLUMNS}) VALUES (?, ?, ?, ?, 1, ?, 'd', 'e', 'h', 0, 0, ?, ?, x'', 0, '', ?, ?, 0, 0, '')",
            (run_id, job_id, f"job{job_id}", scheduled, state, scheduled, scheduled, scheduled, scheduled),
        )
        ids.append(run_id)
    return ids


def run_ids(t: Trio) -> set[str]:
    return {str(row[0]) for row in t.sql("SELECT run_id FROM runs")}


def test_monitor_prunes_at_start_and_on_its_interval(tmp_path: Path) -> None:
    t = make_trio(
        tmp_path,
        extra={
            "store": {
                "keep_runs_days": "1",
                "keep_runs_per_job": "2",
                "keep_audit_days": "1",
                "prune_interval_seconds": "0.5",
                "prune_batch_rows": "3",
                "prune_pause_seconds": "0",
            }
        },
    )
    try:
        t.migrate()
        # Job 1: ten old runs and a young one; job 2: three old runs and an
        # old unfinished one; an old and a young audit entry.
        old1 = add_runs(t, 1, [10 + i for i in range(10)])
        young1 = add_runs(t, 1, [0.1])
        old2 = add_runs(t, 2, [5, 6, 7])
        going = add_runs(t, 2, [9], state="running")
        now = time.time_ns() // 1_000_000
        for at in (now - 3 * DAY_MS, now - 1000):
            t.sql(
                "INSERT INTO audit_log (at_ms, actor, action, target, before_json, after_json) VALUES (?, 'a', 'x', 't', '', '')",
                (at,),
            )
        # Kept: job 1's two newest (the young one and the 10-day one), job
        # 2's two newest (5 and 6 days), the running run whatever its age.
        want = {*young1, old1[0], old2[0], old2[1], *going}

        t.start("monitor")
        wait_for(lambda: run_ids(t) == want, 30, "the monitor's first prune")
        wait_for(lambda: len(t.sql("SELECT id FROM audit_log")) == 1, 10, "the old audit entry to go")

        # While it runs: a new young run of job 2 pushes its 6-day one out
        # of the newest two, and the next pass prunes it.
        later = add_runs(t, 2, [0.2])
        want = (want - {old2[1]}) | set(later)
        wait_for(lambda: run_ids(t) == want, 30, "a later pass to prune the run that fell out")

        log = t.procs["monitor"].log_text()
        assert "retention: pruned 10 run(s) and 1 audit entr(ies)" in log, log
        # The monitor's /status counts the same.
        status_url = f"http://{load_config(t.conf, env={}).monitor.http_listen}/status"
        with urllib.request.urlopen(status_url, timeout=5) as reply:
            pruned = json.load(reply)["pruned"]
        assert pruned == {"runs": 11, "audit": 1}
    finally:
        stop_trio(t)
