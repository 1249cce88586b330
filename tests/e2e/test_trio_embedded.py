"""The three services as real processes in embedded mode (SQLite, in-process
claims, static executor list): firing on time, once, hot-loading SQL edits."""

from __future__ import annotations

import itertools
import json
import time

from testing_support.services import wait_for
from testing_support.trio import Trio


def runs_of(trio: Trio, job: str) -> list[tuple[int, int, str, int, int]]:
    return trio.sql(  # type: ignore[return-value]
        "SELECT scheduled_ms, attempt, status, started_ms, exit_code FROM runs WHERE job_name = ? ORDER BY scheduled_ms",
        (job,),
    )


def test_every_second_job_fires_on_time_once_per_second(trio: Trio) -> None:
    for service in ("executor", "dispatcher", "monitor"):
        trio.start(service)
    added = trio.cronctl("job", "add", "--name", "tick", "--spec", "* * * * * *", "--command", "echo tick $CRONTRIO_RUN_ID")
    assert added.returncode == 0, added.stderr

    wait_for(lambda: sum(1 for r in runs_of(trio, "tick") if r[2] == "succeeded") >= 6, 20, "six successful runs of 'tick'")
    runs = [r for r in runs_of(trio, "tick") if r[2] == "succeeded"]
    scheduled = [r[0] for r in runs]
    # One run per second, each on a whole second, none twice, none skipped.
    assert all(ms % 1000 == 0 for ms in scheduled)
    assert len(set(scheduled)) == len(scheduled)
    assert [b - a for a, b in itertools.pairwise(scheduled)] == [1000] * (len(scheduled) - 1)
    assert {r[1] for r in runs} == {1}
    assert {r[4] for r in runs} == {0}
    # Started on the executor soon after the scheduled second (a functional
    # bound for "on time", not a benchmark: bench/ measures the real lag).
    lags = [started - sched for sched, _, _, started, _ in runs]
    assert all(0 <= lag < 1000 for lag in lags), lags

    shown = trio.cronctl("run", "show", f"{_job_id(trio, 'tick')}-{scheduled[0]}-1", "--json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["status"] == "succeeded"
    assert detail["executor"] == trio.executor
    assert detail["output"].startswith("tick ")
    # The newest runs include those sent ahead and held for their second
    # (up to 1.5 s ahead: two of them) and one just starting, not succeeded yet.
    listed = trio.cronctl("run", "list", "--job", "tick", "--limit", "5")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("succeeded") >= 2, listed.stdout


def _job_id(trio: Trio, name: str) -> int:
    return int(trio.sql("SELECT id FROM jobs WHERE name = ?", (name,))[0][0])  # type: ignore[arg-type]


def test_jobs_inserted_and_deleted_with_plain_sql_are_hot_loaded(trio: Trio) -> None:
    for service in ("executor", "dispatcher", "monitor"):
        trio.start(service)
    inserted_at = time.time() * 1000
    trio.sql("INSERT INTO jobs (name, spec, command) VALUES ('by-sql', '* * * * * *', 'echo from sql')")
    wait_for(lambda: runs_of(trio, "by-sql"), 10, "the SQL-inserted job to fire")
    first = runs_of(trio, "by-sql")[0][0]
    # Picked up within 2 s of the insert (plus the second it waits to fire).
    assert first - inserted_at <= 3000, first - inserted_at

    trio.sql("DELETE FROM jobs WHERE name = 'by-sql'")
    deleted_at = time.time() * 1000
    # A canary inserted after the delete: once it has fired, the dispatcher has
    # applied every change up to and including the delete (applied in order).
    trio.sql("INSERT INTO jobs (name, spec, command) VALUES ('canary', '* * * * * *', 'true')")
    wait_for(lambda: len(runs_of(trio, "canary")) >= 2, 10, "the canary job to fire twice")
    late = [r for r in runs_of(trio, "by-sql") if r[0] > deleted_at + 2000]
    assert late == [], "a deleted job kept firing"
    # History of the deleted job is kept.
    assert runs_of(trio, "by-sql")


def test_job_changed_with_plain_sql_takes_the_new_command(trio: Trio) -> None:
    for service in ("executor", "dispatcher", "monitor"):
        trio.start(service)
    trio.sql("INSERT INTO jobs (name, spec, command) VALUES ('edit-me', '* * * * * *', 'echo before')")
    wait_for(lambda: runs_of(trio, "edit-me"), 10, "the job to fire")
    trio.sql("UPDATE jobs SET command = 'echo after' WHERE name = 'edit-me'")

    def fired_after() -> bool:
        rows = trio.sql("SELECT output FROM runs WHERE job_name = 'edit-me' AND status = 'succeeded'")
        return any(bytes(r[0]).startswith(b"after") for r in rows)  # type: ignore[arg-type]

    wait_for(fired_after, 10, "a run with the updated command")


def test_invalid_job_written_by_sql_is_reported_not_fired(trio: Trio) -> None:
    trio.migrate()
    trio.sql("INSERT INTO jobs (name, spec, command) VALUES ('broken', '61 * * * *', 'true')")
    trio.start("dispatcher")
    listed = trio.cronctl("job", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (job,) = json.loads(listed.stdout)
    assert job["name"] == "broken" and job["next_fire"] is None
    wait_for(
        lambda: "job broken (id 1) is not scheduled: spec:" in trio.procs["dispatcher"].log_text(), 5, "the error in the log"
    )


def test_monitor_logs_executor_down_and_up(trio: Trio) -> None:
    trio.start("executor")
    monitor = trio.start("monitor")
    wait_for(lambda: f"executor {trio.executor} is UP" in monitor.log_text(), 10, "the monitor to see the executor UP")
    assert trio.procs.pop("executor").stop() == 0
    wait_for(lambda: f"executor {trio.executor} went DOWN" in monitor.log_text(), 10, "the monitor to see the executor DOWN")
    trio.start("executor")
    wait_for(lambda: monitor.log_text().count(f"executor {trio.executor} is UP") >= 2, 10, "the executor back UP")


def test_unreachable_executor_gives_a_failed_run_with_the_reason(trio: Trio) -> None:
    trio.start("dispatcher")  # no executor running
    added = trio.cronctl("job", "add", "--name", "orphan", "--spec", "* * * * * *", "--command", "true")
    assert added.returncode == 0, added.stderr
    wait_for(lambda: any(r[2] == "failed" for r in runs_of(trio, "orphan")), 15, "a failed run")
    (error,) = trio.sql("SELECT error FROM runs WHERE job_name = 'orphan' AND status = 'failed' LIMIT 1")[0]
    assert f"executor {trio.executor} unreachable" in str(error)


def test_failed_run_is_retried_per_policy(trio: Trio) -> None:
    trio.start("executor")
    trio.start("dispatcher")
    added = trio.cronctl(
        "job",
        "add",
        "--name",
        "flaky",
        "--spec",
        "@every 1h",
        "--command",
        "exit 3",
        "--retries",
        "2",
        "--retry-interval",
        "0.2",
    )
    assert added.returncode == 0, added.stderr
    # @every 1h will not fire during the test: fire it by moving the spec.
    trio.sql("UPDATE jobs SET spec = '* * * * * *' WHERE name = 'flaky'")
    trio.start("monitor")

    def three_attempts() -> list[tuple[int, int, str, int, int]]:
        rows = runs_of(trio, "flaky")
        first = [r for r in rows if r[0] == rows[0][0]] if rows else []
        done = len(first) == 3 and all(r[2] not in ("pending", "running") for r in first)
        return first if done else []

    attempts = wait_for(three_attempts, 15, "three attempts of one firing")
    assert sorted(r[1] for r in attempts) == [1, 2, 3]
    assert {r[2] for r in attempts} == {"failed"}
    assert {r[4] for r in attempts} == {3}
