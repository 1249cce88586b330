"""Job semantics end to end: cronctl -> dispatcher -> real executor processes.

One trio (two executors) serves the module; every test uses its own jobs.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from typing import Any

import grpc
import pytest

from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc
from testing_support.services import wait_for
from testing_support.trio import Trio

pytestmark = pytest.mark.xdist_group("semantics")


def add(trio: Trio, name: str, *args: str) -> dict[str, Any]:
    result = trio.cronctl("job", "add", "--name", name, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def runs(trio: Trio, job: str, where: str = "1=1") -> list[dict[str, Any]]:
    rows = trio.sql(
        "SELECT run_id, scheduled_ms, attempt, status, started_ms, finished_ms, executor, output, error, trigger, shard, "
        f"shard_total FROM runs WHERE job_name = ? AND {where} ORDER BY scheduled_ms, attempt, shard",
        (job,),
    )
    keys = (
        "run_id",
        "scheduled",
        "attempt",
        "status",
        "started",
        "finished",
        "executor",
        "output",
        "error",
        "trigger",
        "shard",
        "shard_total",
    )
    return [dict(zip(keys, r, strict=True)) for r in rows]


def finished(trio: Trio, job: str, count: int, timeout: float = 20, where: str = "1=1") -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        done = [r for r in runs(trio, job, where) if r["status"] not in ("pending", "running", "queued")]
        return done if len(done) >= count else None

    return wait_for(enough, timeout, f"{count} finished runs of {job}")


def no_two_executions_overlap(rows: list[dict[str, Any]]) -> None:
    ran = sorted((r["started"], r["finished"]) for r in rows if r["started"] and r["finished"])
    for (_, end), (start, _) in itertools.pairwise(ran):
        assert start >= end, f"two runs overlapped: one ended {end}, the next started {start}"


def test_overlap_skip_records_skipped_runs_and_never_overlaps(busy_trio: Trio) -> None:
    add(busy_trio, "ov-skip", "--spec", "* * * * * *", "--command", "sleep 2.2", "--overlap", "skip")
    rows = finished(busy_trio, "ov-skip", 6)
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert skipped and all("previous run" in r["error"] and "is still" in r["error"] for r in skipped)
    assert any(r["status"] == "succeeded" for r in rows)
    no_two_executions_overlap(runs(busy_trio, "ov-skip"))
    busy_trio.cronctl("job", "delete", "ov-skip")


def test_overlap_queue_keeps_one_waiting_and_runs_it_after(busy_trio: Trio) -> None:
    add(busy_trio, "ov-queue", "--spec", "* * * * * *", "--command", "sleep 2.2", "--overlap", "queue")
    rows = finished(busy_trio, "ov-queue", 8, timeout=30)
    assert any("queue full" in r["error"] for r in rows if r["status"] == "skipped")
    # A queued firing ran later: its run row started after its scheduled second plus the wait.
    ran_late = [r for r in rows if r["status"] == "succeeded" and r["started"] - r["scheduled"] > 1000]
    assert ran_late, rows
    no_two_executions_overlap(runs(busy_trio, "ov-queue"))
    busy_trio.cronctl("job", "delete", "ov-queue")


def test_overlap_replace_kills_the_running_one(busy_trio: Trio) -> None:
    add(busy_trio, "ov-replace", "--spec", "*/2 * * * * *", "--command", "sleep 30", "--overlap", "replace")
    rows = finished(busy_trio, "ov-replace", 2, timeout=20)
    assert rows[0]["status"] == "killed"
    busy_trio.cronctl("job", "delete", "ov-replace")


def test_retries_back_off_exponentially(busy_trio: Trio) -> None:
    add(
        busy_trio,
        "retry-backoff",
        "--spec",
        "@yearly",
        "--command",
        "exit 4",
        "--retries",
        "3",
        "--retry-interval",
        "0.3",
        "--retry-backoff",
        "2",
    )
    assert busy_trio.cronctl("job", "run", "retry-backoff").returncode == 0
    rows = finished(busy_trio, "retry-backoff", 4)
    assert [r["attempt"] for r in rows] == [1, 2, 3, 4]
    assert {r["status"] for r in rows} == {"failed"} and len({r["scheduled"] for r in rows}) == 1
    gaps = [b["started"] - a["finished"] for a, b in itertools.pairwise(rows)]
    # 0.3 s, 0.6 s, 1.2 s between attempts (each gap includes a little scheduling slack).
    assert gaps[0] >= 280 and gaps[1] >= 580 and gaps[2] >= 1180, gaps
    assert gaps[0] < gaps[1] < gaps[2], gaps


def test_timeout_kills_and_keeps_output(busy_trio: Trio) -> None:
    add(busy_trio, "slow", "--spec", "@yearly", "--command", "echo begun; sleep 30", "--timeout", "1")
    busy_trio.cronctl("job", "run", "slow")
    (row,) = finished(busy_trio, "slow", 1)
    assert row["status"] == "timeout"
    assert bytes(row["output"]).startswith(b"begun")


def test_manual_run_and_kill(busy_trio: Trio) -> None:
    add(busy_trio, "long", "--spec", "@yearly", "--command", "sleep 60")
    started = busy_trio.cronctl("job", "run", "long", "--json")
    run_id = json.loads(started.stdout)["run_id"]
    wait_for(lambda: runs(busy_trio, "long", "status = 'running'"), 10, "the manual run to be running")
    killed = busy_trio.cronctl("run", "kill", run_id)
    assert killed.returncode == 0, killed.stderr
    (row,) = finished(busy_trio, "long", 1)
    assert (row["status"], row["trigger"]) == ("killed", "manual")
    again = busy_trio.cronctl("run", "kill", run_id)
    assert again.returncode == 1 and "is not running" in again.stderr


def test_pause_resume_and_edit(busy_trio: Trio) -> None:
    add(busy_trio, "pausable", "--spec", "* * * * * *", "--command", "echo before")
    finished(busy_trio, "pausable", 1)
    assert busy_trio.cronctl("job", "pause", "pausable").returncode == 0
    paused_at = time.time() * 1000
    add(busy_trio, "pause-canary", "--spec", "* * * * * *", "--command", "true")
    finished(busy_trio, "pause-canary", 3)
    # Firings sent ahead before the pause (the lead: at most 1.5 s here) end
    # skipped; none after the pause runs, none beyond the lead is recorded.
    after = runs(busy_trio, "pausable", f"scheduled_ms > {paused_at}")
    assert all(r["status"] == "skipped" for r in after), after
    assert not runs(busy_trio, "pausable", f"scheduled_ms > {paused_at + 1500}")
    shown = json.loads(busy_trio.cronctl("job", "show", "pausable", "--json").stdout)
    assert shown["enabled"] is False and shown["next_fire"] is None
    edited = busy_trio.cronctl("job", "edit", "pausable", "--command", "echo after", "--timeout", "5")
    assert edited.returncode == 0, edited.stderr
    assert busy_trio.cronctl("job", "resume", "pausable").returncode == 0
    rows = finished(busy_trio, "pausable", 1, where=f"scheduled_ms > {time.time() * 1000}")
    assert bytes(rows[0]["output"]).startswith(b"after")
    assert json.loads(busy_trio.cronctl("job", "show", "pausable", "--json").stdout)["timeout_seconds"] == 5
    busy_trio.cronctl("job", "delete", "pause-canary")
    busy_trio.cronctl("job", "delete", "pausable")


def held_firing(trio: Trio, name: str) -> tuple[dict[str, Any], pb_grpc.AdminStub, grpc.Channel]:
    """A job firing once, 4 s from now, and its run as soon as it is recorded:
    sent ahead (the default dispatch_ahead_ms) and held by its executor."""
    at = int(time.time()) + 4
    add(trio, name, "--spec", f"{at % 60} * * * * *", "--command", "echo ran")
    row = wait_for(lambda: runs(trio, name, "status = 'pending'"), 10, f"the firing of {name} to be sent ahead")[0]
    assert row["scheduled"] == at * 1000, row
    channel = grpc.insecure_channel(trio.dispatcher)
    return row, pb_grpc.AdminStub(channel), channel


def test_pausing_a_job_cancels_its_firing_sent_ahead(busy_trio: Trio) -> None:
    row, admin, channel = held_firing(busy_trio, "pause-held")
    with channel:
        admin.PauseJob(pb.JobRef(name="pause-held"), timeout=10)
    assert time.time() * 1000 < row["scheduled"], "too slow: the firing started before the pause"
    (done,) = finished(busy_trio, "pause-held", 1)
    assert done["status"] == "skipped", done
    assert "paused before this firing's scheduled time" in done["error"]
    assert (done["started"], bytes(done["output"])) == (0, b""), "the command ran"
    busy_trio.cronctl("job", "delete", "pause-held")


def test_editing_a_job_reaches_its_firing_sent_ahead(busy_trio: Trio) -> None:
    row, admin, channel = held_firing(busy_trio, "edit-held")
    with channel:  # the API, not cronctl: the firing is at most 3 s away
        job = admin.GetJob(pb.JobRef(name="edit-held"), timeout=10)
        job.command = "echo edited"
        job.keywords.append("edited")
        admin.UpdateJob(job, timeout=10)
    assert time.time() * 1000 < row["scheduled"], "too slow: the firing started before the edit"
    (done,) = finished(busy_trio, "edit-held", 1)
    assert done["run_id"] == row["run_id"], "not the firing that was held"
    assert bytes(done["output"]) == b"edited\n", "the held run executed the old command"
    # Judged as the job is now: its new keyword was looked for and found.
    assert done["status"] == "failed" and "output contains keyword 'edited'" in done["error"], done
    busy_trio.cronctl("job", "delete", "edit-held")


def test_an_edit_whose_schedule_drops_the_instant_cancels_the_firing_sent_ahead(busy_trio: Trio) -> None:
    row, admin, channel = held_firing(busy_trio, "move-held")
    with channel:
        job = admin.GetJob(pb.JobRef(name="move-held"), timeout=10)
        job.spec = f"{(row['scheduled'] // 1000 + 30) % 60} * * * * *"
        admin.UpdateJob(job, timeout=10)
    assert time.time() * 1000 < row["scheduled"], "too slow: the firing started before the edit"
    (done,) = finished(busy_trio, "move-held", 1, where=f"run_id = '{row['run_id']}'")
    assert done["status"] == "skipped", done
    assert "was edited: its schedule no longer fires at" in done["error"], done
    assert (done["started"], bytes(done["output"])) == (0, b""), "the command ran"
    busy_trio.cronctl("job", "delete", "move-held")


def test_killing_a_firing_sent_ahead_ends_it_before_it_runs(busy_trio: Trio) -> None:
    row, admin, channel = held_firing(busy_trio, "kill-held")
    with channel:
        # The row is written before the run is handed to its executor; until
        # then KillRun answers "not reached an executor yet" and kills
        # nothing, so ask again (the firing is still seconds away).
        def kill() -> pb.KillRunReply | None:
            reply = admin.KillRun(pb.RunRef(run_id=row["run_id"]), timeout=10)
            assert reply.killed or "not reached an executor yet" in reply.reason, reply.reason
            return reply if reply.killed else None

        wait_for(kill, 3, "the held run to be killed")
    assert time.time() * 1000 < row["scheduled"], "too slow: the firing started before the kill"
    (done,) = finished(busy_trio, "kill-held", 1)
    assert done["status"] == "killed", done
    assert "before its scheduled start" in done["error"]
    assert (done["started"], bytes(done["output"])) == (0, b""), "the command ran"
    busy_trio.cronctl("job", "delete", "kill-held")


def test_dependencies_run_after_and_cycles_are_refused(busy_trio: Trio) -> None:
    add(busy_trio, "dep-a", "--spec", "@yearly", "--command", "echo a")
    add(busy_trio, "dep-b", "--spec", "", "--after", "dep-a", "--command", "echo b")
    add(busy_trio, "dep-c", "--spec", "", "--after", "dep-a:on_failure", "--command", "echo c")
    add(busy_trio, "dep-d", "--spec", "", "--after", "dep-b:always", "--command", "echo d")
    busy_trio.cronctl("job", "run", "dep-a")
    (b,) = finished(busy_trio, "dep-b", 1)
    (d,) = finished(busy_trio, "dep-d", 1)
    (a,) = runs(busy_trio, "dep-a")
    assert b["trigger"] == "after:dep-a" and d["trigger"] == "after:dep-b"
    assert b["started"] >= a["finished"] and d["started"] >= b["finished"]
    assert not runs(busy_trio, "dep-c"), "on_failure ran after a success"
    cycle = busy_trio.cronctl("job", "edit", "dep-a", "--after", "dep-d")
    assert cycle.returncode == 2
    assert "after: dependency cycle: dep-a -> dep-d -> dep-b -> dep-a" in cycle.stderr
    missing = busy_trio.cronctl("job", "add", "--name", "dep-x", "--spec", "", "--after", "nope", "--command", "true")
    assert missing.returncode == 2 and "after: no job named 'nope'" in missing.stderr


def test_keywords_fail_or_notify(busy_trio: Trio) -> None:
    add(busy_trio, "kw-fail", "--spec", "@yearly", "--command", "echo fine; echo 'ERROR: disk full'", "--keyword", "ERROR")
    add(
        busy_trio,
        "kw-note",
        "--spec",
        "@yearly",
        "--command",
        "echo 'WARN: slow'",
        "--keyword",
        "WARN",
        "--keyword-action",
        "notify",
    )
    busy_trio.cronctl("job", "run", "kw-fail")
    busy_trio.cronctl("job", "run", "kw-note")
    (failed,) = finished(busy_trio, "kw-fail", 1)
    (noted,) = finished(busy_trio, "kw-note", 1)
    assert failed["status"] == "failed" and "output contains keyword 'ERROR'" in failed["error"]
    assert noted["status"] == "succeeded" and "(notify only)" in noted["error"]


def test_shell_options_env_workdir_user(busy_trio: Trio, tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("wd")
    add(
        busy_trio,
        "shell-opts",
        "--spec",
        "@yearly",
        "--workdir",
        str(workdir),
        "--env",
        "GREETING=hi there",
        "--command",
        'echo "$GREETING|$(pwd)|$CRONTRIO_JOB_NAME|$CRONTRIO_RUN_ID|$CRONTRIO_SCHEDULED_MS"',
    )
    busy_trio.cronctl("job", "run", "shell-opts")
    (row,) = finished(busy_trio, "shell-opts", 1)
    greeting, cwd, name, run_id, scheduled = bytes(row["output"]).decode().strip().split("|")
    assert (greeting, cwd, name, run_id) == ("hi there", str(workdir), "shell-opts", row["run_id"])
    assert int(scheduled) == row["scheduled"]

    # /tmp: the executor's own directory (a 0700 test dir) is not nobody's to enter.
    add(busy_trio, "as-nobody", "--spec", "@yearly", "--user", "nobody", "--workdir", "/tmp", "--command", "id -un")
    busy_trio.cronctl("job", "run", "as-nobody")
    (row,) = finished(busy_trio, "as-nobody", 1)
    if os.getuid() == 0:
        assert (row["status"], bytes(row["output"]).strip()) == ("succeeded", b"nobody")
    else:
        assert row["status"] == "failed" and "not running as root" in row["error"]


def test_broadcast_and_sharded_run_on_every_executor(busy_trio: Trio) -> None:
    add(busy_trio, "bcast", "--spec", "@yearly", "--route", "broadcast", "--command", "echo hi")
    add(
        busy_trio,
        "shards",
        "--spec",
        "@yearly",
        "--route",
        "sharded",
        "--command",
        'echo "$CRONTRIO_SHARD_INDEX/$CRONTRIO_SHARD_TOTAL"',
    )
    busy_trio.cronctl("job", "run", "bcast")
    busy_trio.cronctl("job", "run", "shards")
    b = finished(busy_trio, "bcast", 2)
    assert {r["executor"] for r in b} == {busy_trio.executor, busy_trio.executor2}
    assert [r["shard_total"] for r in b] == [2, 2] and {r["status"] for r in b} == {"succeeded"}
    s = finished(busy_trio, "shards", 2)
    assert sorted(bytes(r["output"]).strip() for r in s) == [b"0/2", b"1/2"]


def test_consistent_hash_keeps_a_job_on_one_executor(busy_trio: Trio) -> None:
    add(busy_trio, "sticky", "--spec", "* * * * * *", "--route", "consistent_hash", "--command", "true")
    rows = finished(busy_trio, "sticky", 4)
    assert len({r["executor"] for r in rows}) == 1
    busy_trio.cronctl("job", "delete", "sticky")


def test_round_robin_uses_both_executors(busy_trio: Trio) -> None:
    add(busy_trio, "rr", "--spec", "* * * * * *", "--command", "true")
    rows = finished(busy_trio, "rr", 4)
    assert {r["executor"] for r in rows} == {busy_trio.executor, busy_trio.executor2}
    busy_trio.cronctl("job", "delete", "rr")


def test_hashed_spec_fires_at_a_stable_offset(busy_trio: Trio) -> None:
    job = add(busy_trio, "hashed", "--spec", "H/3 * * * * *", "--command", "true")
    rows = finished(busy_trio, "hashed", 3)
    offsets = {r["scheduled"] // 1000 % 3 for r in rows}
    assert len(offsets) == 1
    assert [b["scheduled"] - a["scheduled"] for a, b in itertools.pairwise(rows)] == [3000] * (len(rows) - 1)
    assert job["next_fire"] is not None
    busy_trio.cronctl("job", "delete", "hashed")


def test_misfire_policies_catch_up_after_the_dispatcher_was_down(busy_trio: Trio) -> None:
    add(busy_trio, "mf-all", "--spec", "* * * * * *", "--command", "true", "--misfire", "run_all")
    add(busy_trio, "mf-once", "--spec", "* * * * * *", "--command", "true", "--misfire", "run_once")
    finished(busy_trio, "mf-all", 1)
    finished(busy_trio, "mf-once", 1)
    down_ms = time.time() * 1000  # before the stop: a graceful stop may wait for runs in flight
    assert busy_trio.procs.pop("dispatcher").stop() == 0
    # 4.5 s: firings sent ahead before the stop ([dispatcher] dispatch_ahead_ms,
    # up to 1 s) ran as scheduled ones; at least 3 must be left to catch up.
    wait_for(lambda: time.time() * 1000 > down_ms + 4500, 6, "a few seconds with no dispatcher")
    busy_trio.start("dispatcher")
    up_ms = time.time() * 1000
    wait_for(lambda: len([r for r in runs(busy_trio, "mf-all") if r["trigger"] == "catch_up"]) >= 3, 10, "run_all catch-up")
    caught_all = [r for r in runs(busy_trio, "mf-all") if r["trigger"] == "catch_up"]
    assert all(down_ms - 1000 <= r["scheduled"] <= up_ms for r in caught_all)
    assert len({r["scheduled"] for r in caught_all}) == len(caught_all)

    def caught_once() -> list[dict[str, Any]] | None:
        rows = [r for r in runs(busy_trio, "mf-once") if r["trigger"] == "catch_up"]
        return rows if any(r["status"] != "missed" for r in rows) else None

    once = wait_for(caught_once, 10, "the run_once catch-up run")
    ran = [r for r in once if r["status"] != "missed"]
    missed = [r for r in once if r["status"] == "missed"]
    assert len(ran) == 1 and missed and all("run_once ran only the latest" in r["error"] for r in missed)
    assert ran[0]["scheduled"] > max(r["scheduled"] for r in missed)
    for name in ("mf-all", "mf-once"):
        busy_trio.cronctl("job", "delete", name)


def test_http_job_sends_method_headers_body(busy_trio: Trio) -> None:
    import http.server
    import threading

    seen: list[tuple[str, str, bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.command, self.headers.get("X-Token", ""), body))
            self.send_response(202)
            self.end_headers()
            self.wfile.write(b"accepted")

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        add(
            busy_trio,
            "http-post",
            "--spec",
            "@yearly",
            "--type",
            "http",
            "--method",
            "POST",
            "--command",
            url,
            "--header",
            "X-Token: s3cret",
            "--body",
            '{"a": 1}',
            "--expect-status",
            "202",
        )
        busy_trio.cronctl("job", "run", "http-post")
        (row,) = finished(busy_trio, "http-post", 1)
        assert row["status"] == "succeeded", row
        assert seen == [("POST", "s3cret", b'{"a": 1}')]
        assert bytes(row["output"]).startswith(b"HTTP 202") and b"accepted" in bytes(row["output"])
    finally:
        server.shutdown()


@pytest.mark.parametrize("strategy", ["first", "random", "least_busy"])
def test_other_strategies_route_to_live_executors(busy_trio: Trio, strategy: str) -> None:
    add(busy_trio, f"route-{strategy}", "--spec", "* * * * * *", "--route", strategy, "--command", "true")
    rows = finished(busy_trio, f"route-{strategy}", 12 if strategy == "random" else 4, timeout=30)
    busy_trio.cronctl("job", "delete", f"route-{strategy}")
    assert {r["status"] for r in rows} == {"succeeded"}
    used = {r["executor"] for r in rows}
    if strategy == "first":
        assert used == {min(busy_trio.executor, busy_trio.executor2)}
    elif strategy == "random":
        assert used == {busy_trio.executor, busy_trio.executor2}  # 12 runs on one of two: p = 1/2048
    else:
        assert used <= {busy_trio.executor, busy_trio.executor2}
