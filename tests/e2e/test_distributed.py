"""Distributed mode end to end: real MariaDB, Redis and etcd servers; dispatchers,
executors and the monitor as real processes. Exactly once, nothing lost.

These tests share one xdist group: each starts a small cluster, and running
two clusters at once on a 2-core machine would only measure CPU contention.
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import time

import pytest
import redis

from testing_support.cluster import Cluster
from testing_support.servers import EtcdServer, RedisServer
from testing_support.services import REPO, wait_for

pytestmark = pytest.mark.xdist_group("cluster")


def add_jobs(cluster: Cluster, count: int, command: str, spec: str = "* * * * * *", retries: int = 1, target: str = "") -> None:
    for i in range(count):
        cluster.sql(
            "INSERT INTO jobs (name, spec, command, retries, retry_interval_seconds, target) VALUES (%s, %s, %s, %s, 0, %s)",
            (f"job{i:02d}", spec, command, retries, target),
        )


def firings(cluster: Cluster, start_ms: int, end_ms: int) -> dict[tuple[int, int], list[tuple[object, ...]]]:
    """(job_id, scheduled_ms) -> its run rows (attempt, status, dispatcher, executor, started_ms, error)."""
    rows = cluster.sql(
        "SELECT job_id, scheduled_ms, attempt, status, dispatcher, executor, started_ms, error FROM runs "
        "WHERE scheduled_ms >= %s AND scheduled_ms < %s ORDER BY job_id, scheduled_ms, attempt",
        (start_ms, end_ms),
    )
    out: dict[tuple[int, int], list[tuple[object, ...]]] = {}
    for job_id, scheduled, *rest in rows:
        out.setdefault((int(job_id), int(scheduled)), []).append(tuple(rest))  # type: ignore[call-overload]
    return out


def active_runs(cluster: Cluster, before_ms: int) -> int:
    """Runs of firings before `before_ms` not yet ended. Only those: the jobs
    keep firing, and later firings may already be recorded (pending, even
    sent ahead with [dispatcher] dispatch_ahead_ms)."""
    rows = cluster.sql("SELECT COUNT(*) FROM runs WHERE status IN ('pending', 'running') AND scheduled_ms < %s", (before_ms,))
    return int(rows[0][0])  # type: ignore[call-overload]


def one_job_firing(cluster: Cluster) -> None:
    """Executor e1, dispatcher d1 and the monitor, with one every-second job that has run."""
    for service, name in (("executor", "e1"), ("dispatcher", "d1"), ("monitor", "m")):
        cluster.add(service, name)
        cluster.start(name)
    add_jobs(cluster, 1, "true", retries=0)
    wait_for(lambda: cluster.sql("SELECT 1 FROM runs WHERE status = 'succeeded'"), 15, "the job to fire")


def whole_second(t: float) -> int:
    return int(t) * 1000


def test_three_dispatchers_fire_exactly_once_and_survive_a_kill_9(cluster: Cluster) -> None:
    for name in ("e1", "e2"):
        cluster.add("executor", name)
        cluster.start(name)
    for name in ("d1", "d2", "d3"):
        cluster.add("dispatcher", name)
        cluster.start(name)
    cluster.add("monitor", "m")
    cluster.start("m")
    jobs, seconds = 20, 30
    add_jobs(cluster, jobs, "sleep 0.5; echo done $CRONTRIO_RUN_ID")
    start_ms = whole_second(time.time()) + 3000  # after every dispatcher has loaded them
    end_ms = start_ms + seconds * 1000
    wait_for(lambda: time.time() >= start_ms / 1000 + seconds / 2, seconds, "the middle of the run")

    def d1_in_flight() -> list[tuple[object, ...]]:
        return cluster.sql("SELECT run_id FROM runs WHERE dispatcher LIKE 'd1@%%' AND status = 'running'")

    victims = [r[0] for r in wait_for(d1_in_flight, 10, "runs in flight on d1")]
    cluster.kill("d1")  # mid-run: these runs are still going on the executors
    killed_ms = int(time.time() * 1000)
    wait_for(lambda: time.time() * 1000 >= end_ms + 1000, seconds, "the end of the window")
    wait_for(lambda: active_runs(cluster, end_ms) == 0, 30, "every run of the window to be finished or settled")

    got = firings(cluster, start_ms, end_ms)
    assert len(got) == jobs * seconds, f"{jobs * seconds - len(got)} firings have no run at all (missed)"
    for firing, rows in got.items():
        attempts = [r[0] for r in rows]
        assert attempts.count(1) == 1, (firing, rows)
        assert any(r[1] == "succeeded" for r in rows), (firing, rows)
        assert all(r[1] != "missed" for r in rows), (firing, rows)
    # The runs in flight on d1 ended with their real result, collected by the
    # monitor from the executors' journals.
    placeholders = ",".join(["%s"] * len(victims))
    outcomes = cluster.sql(f"SELECT status, output FROM runs WHERE run_id IN ({placeholders})", tuple(victims))
    assert [r[0] for r in outcomes] == ["succeeded"] * len(victims), outcomes
    assert all(bytes(r[1]).startswith(b"done ") for r in outcomes)  # type: ignore[arg-type]
    collected = cluster.log("m").count("is gone; collected the result from executor")
    assert collected >= len(victims)
    print(f"\nd1 had {len(victims)} runs in flight at kill -9; the monitor collected {collected} results")

    # Failover figures: lag of the succeeding attempt for firings after the kill.
    lags = sorted(
        int(r[4]) - scheduled  # type: ignore[call-overload]
        for (_, scheduled), rows in got.items()
        if scheduled >= killed_ms
        for r in rows
        if r[1] == "succeeded"
    )
    late = [lag for lag in lags if lag > 1000]
    print(
        f"after kill -9: {len(lags)} firings, lag p50 {statistics.median(lags):.0f} ms, "
        f"p99 {lags[int(len(lags) * 0.99) - 1]} ms, max {lags[-1]} ms, {len(late)} later than 1 s"
    )
    assert "taking it over" in cluster.log("d2") + cluster.log("d3") or not late


def test_killed_executor_runs_are_marked_lost_and_retried_on_the_other(cluster: Cluster) -> None:
    for name in ("e1", "e2"):
        cluster.add("executor", name)
        cluster.start(name)
    cluster.add("dispatcher", "d1")
    cluster.start("d1")
    cluster.add("monitor", "m")
    cluster.start("m")
    e2 = cluster.members["e2"].address
    add_jobs(cluster, 4, "sleep 4; echo ok", spec="*/5 * * * * *", retries=1)

    def running_on_e2() -> list[tuple[object, ...]]:
        return cluster.sql("SELECT run_id FROM runs WHERE executor = %s AND status = 'running'", (e2,))

    victims = [r[0] for r in wait_for(running_on_e2, 20, "runs going on e2")]
    cluster.kill("e2")

    def settled() -> bool:
        rows = cluster.sql(f"SELECT status FROM runs WHERE run_id IN ({','.join(['%s'] * len(victims))})", tuple(victims))
        return all(r[0] == "lost" for r in rows)

    wait_for(settled, 30, "the runs on the killed executor to be marked lost")
    for run_id in victims:
        job_id, scheduled, _ = str(run_id).split("-")
        (error,) = cluster.sql("SELECT error FROM runs WHERE run_id = %s", (run_id,))[0]
        assert "executor lost" in str(error), error
        retry = f"{job_id}-{scheduled}-2"
        wait_for(
            lambda retry=retry: cluster.sql(
                "SELECT status, executor FROM runs WHERE run_id = %s AND status = 'succeeded'", (retry,)
            ),
            30,
            f"retry {retry} to succeed",
        )
        (_, executor) = cluster.sql("SELECT status, executor FROM runs WHERE run_id = %s", (retry,))[0]
        assert executor == cluster.members["e1"].address


def test_etcd_restart_recovers_registration_and_routing(cluster: Cluster, etcd_server: EtcdServer) -> None:
    cluster.add("executor", "e1")
    cluster.start("e1")
    cluster.add("dispatcher", "d1")
    cluster.start("d1")
    cluster.add("monitor", "m")
    cluster.start("m")
    add_jobs(cluster, 1, "echo tick")

    etcd_server.kill()
    etcd_server.start()  # same port, same data: leases granted before may have expired meanwhile
    restarted_ms = int(time.time() * 1000)
    # A new executor registering after the restart must be found by the
    # dispatcher's resumed watch: route a job to it alone.
    cluster.add("executor", "e2")
    cluster.start("e2")
    e2 = cluster.members["e2"].address
    cluster.sql("INSERT INTO jobs (name, spec, command, target) VALUES ('on-e2', '* * * * * *', 'echo e2', %s)", (e2,))
    wait_for(
        lambda: cluster.sql("SELECT 1 FROM runs WHERE job_name = 'on-e2' AND status = 'succeeded' AND executor = %s", (e2,)),
        15,
        "a run routed to the executor registered after the etcd restart",
    )
    # The old executor re-registered by itself (within the lease TTL) and keeps running its job.
    wait_for(lambda: "re-registered" in cluster.log("e1") or "registered" in cluster.log("e1"), 10, "e1 to re-register")
    wait_for(
        lambda: cluster.sql(
            "SELECT 1 FROM runs WHERE job_name = 'job00' AND status = 'succeeded' AND scheduled_ms > %s", (restarted_ms + 4000,)
        ),
        15,
        "job00 to keep succeeding after the restart",
    )


def test_redis_down_firing_continues_without_duplicates(cluster: Cluster, redis_server: RedisServer) -> None:
    cluster.add("executor", "e1")
    cluster.start("e1")
    for name in ("d1", "d2"):
        cluster.add("dispatcher", name)
        cluster.start(name)
    cluster.add("monitor", "m")
    cluster.start("m")
    add_jobs(cluster, 5, "echo x", retries=0)
    wait_for(lambda: cluster.sql("SELECT 1 FROM runs WHERE status = 'succeeded'"), 15, "firing to start")
    redis_server.kill()
    down_ms = whole_second(time.time()) + 1000
    wait_for(lambda: time.time() * 1000 >= down_ms + 6000, 10, "six seconds of firing without Redis")
    end_ms = down_ms + 5000
    wait_for(lambda: active_runs(cluster, end_ms) == 0, 15, "runs of the window to finish")
    got = firings(cluster, down_ms, end_ms)
    assert len(got) == 5 * 5, f"{25 - len(got)} firings missing while Redis was down"
    for firing, rows in got.items():
        assert [r[0] for r in rows] == [1], (firing, rows)
        assert rows[0][1] == "succeeded"
    logs = cluster.log("d1") + cluster.log("d2")
    assert "fall back to the database unique key" in logs
    redis_server.start()
    wait_for(lambda: "back on Redis" in cluster.log("d1") + cluster.log("d2"), 30, "claims to go back to Redis")


def test_firings_nobody_ran_are_recorded_as_missed(cluster: Cluster) -> None:
    one_job_firing(cluster)
    assert cluster.stop("d1") == 0
    stopped_ms = int(time.time() * 1000)
    wait_for(lambda: time.time() * 1000 >= stopped_ms + 3000, 5, "three seconds with no dispatcher")
    cluster.start("d1")
    # The monitor judges a firing `missed_after_seconds` (8 s here) after its time.
    rows = wait_for(
        lambda: cluster.sql("SELECT scheduled_ms, error FROM runs WHERE status = 'missed'"), 20, "missed firings to be recorded"
    )
    assert all("no dispatcher fired it" in str(error) for _, error in rows)
    missed = {int(ms) for ms, _ in rows}  # type: ignore[call-overload]
    assert all(stopped_ms - 1000 <= ms <= stopped_ms + 5000 for ms in missed), (stopped_ms, missed)
    # ...and each missed firing has no other run: recorded, not run late.
    for ms in missed:
        assert len(cluster.sql("SELECT 1 FROM runs WHERE scheduled_ms = %s", (ms,))) == 1


def test_cronctl_finds_dispatchers_in_etcd(cluster: Cluster, etcd_server: EtcdServer) -> None:
    cluster.add("dispatcher", "d1")
    cluster.start("d1")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crontrio.cronctl.main",
            "--etcd",
            etcd_server.endpoint,
            "job",
            "add",
            "--name",
            "via-etcd",
            "--spec",
            "@daily",
            "--command",
            "true",
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert cluster.sql("SELECT name FROM jobs") == [("via-etcd",)]
    cluster.stop("d1")  # deregisters: nothing left to find
    empty = subprocess.run(
        [sys.executable, "-m", "crontrio.cronctl.main", "--etcd", etcd_server.endpoint, "job", "list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert empty.returncode == 3 and "no dispatcher registered in etcd" in empty.stderr


def test_target_without_live_executor_gives_a_failed_run(cluster: Cluster) -> None:
    cluster.add("executor", "e1")
    cluster.start("e1")
    cluster.add("dispatcher", "d1")
    cluster.start("d1")
    cluster.add("monitor", "m")
    cluster.start("m")
    add_jobs(cluster, 1, "true", retries=0, target="group:nosuch")
    rows = wait_for(
        lambda: cluster.sql("SELECT status, error FROM runs WHERE status NOT IN ('pending', 'running') LIMIT 1"),
        15,
        "a finished run of the job",
    )
    assert rows[0][0] == "failed"
    assert "no executor" in str(rows[0][1])


def test_overlap_skip_holds_across_dispatchers(cluster: Cluster) -> None:
    cluster.add("executor", "e1")
    cluster.start("e1")
    for name in ("d1", "d2"):
        cluster.add("dispatcher", name)
        cluster.start(name)
    cluster.add("monitor", "m")
    cluster.start("m")
    cluster.sql(
        "INSERT INTO jobs (name, spec, command, overlap_policy) VALUES ('one-at-a-time', '* * * * * *', 'sleep 2.2', 'skip')"
    )

    def done() -> list[tuple[object, ...]] | None:
        rows = cluster.sql(
            "SELECT status, dispatcher, started_ms, finished_ms FROM runs "
            "WHERE status IN ('succeeded', 'skipped') ORDER BY scheduled_ms"
        )
        return rows if len(rows) >= 8 else None

    rows = wait_for(done, 30, "eight finished or skipped firings")
    ran = sorted((int(r[2]), int(r[3])) for r in rows if r[0] == "succeeded")  # type: ignore[call-overload]
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(ran)), f"two runs overlapped: {ran}"
    skipped_by = {str(r[1]).split("@")[0] for r in rows if r[0] == "skipped"}
    fired_by = {str(r[1]).split("@")[0] for r in rows}
    assert "skipped" in {r[0] for r in rows} and fired_by == {"d1", "d2"}, (skipped_by, fired_by)


def test_a_run_its_dead_dispatcher_recorded_but_never_sent_is_adopted(cluster: Cluster, redis_server: RedisServer) -> None:
    """A dispatcher that dies between recording a run and sending it (with
    dispatch_ahead_ms: in the second before the firing) leaves a pending row
    no executor has. A live dispatcher, which lost that firing's claim, finds
    the owner dead and adopts the run: attempt 1 runs, once, and nothing is
    left for the monitor to call lost and retry."""
    one_job_firing(cluster)
    ((job_id,),) = cluster.sql("SELECT id FROM jobs WHERE name = 'job00'")
    # A firing 3 s ahead, claimed and recorded by a dispatcher that then died
    # (it never registered: as one whose registration went with it).
    ghost = "ghost@1"
    scheduled = whole_second(time.time()) + 3000
    run_id = f"{job_id}-{scheduled}-1"
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    try:
        assert client.set(f"crontrio:fire:{job_id}:{scheduled}", ghost, nx=True, px=600_000)
    finally:
        client.close()
    cluster.sql(
        "INSERT INTO runs (run_id, job_id, job_name, scheduled_ms, attempt, status, dispatcher, executor, host, pid,"
        " exit_code, started_ms, finished_ms, output, output_truncated, error, created_ms, updated_ms, shard,"
        " shard_total, `trigger`) VALUES (%s, %s, 'job00', %s, 1, 'pending', %s, '', '', 0, 0, 0, 0, '', 0, '', %s, %s,"
        " 0, 0, 'schedule')",
        (run_id, job_id, scheduled, ghost, scheduled, scheduled),
    )
    rows = wait_for(
        lambda: cluster.sql(
            "SELECT attempt, status, dispatcher, started_ms FROM runs WHERE job_id = %s AND scheduled_ms = %s"
            " AND status NOT IN ('pending', 'running')",
            (job_id, scheduled),
        ),
        20,
        "the ghost's run to end",
    )
    assert len(rows) == 1, rows  # no retry: it was never lost
    attempt, run_status, dispatcher, started_ms = rows[0]
    assert (attempt, run_status) == (1, "succeeded"), rows
    assert str(dispatcher).startswith("d1@"), dispatcher
    print(f"\nadopted run started {int(started_ms) - scheduled} ms after its time")  # type: ignore[call-overload]
    assert "adopted from dead dispatcher ghost@1" in cluster.log("d1")
