"""A rolling restart of the executors in distributed mode (real MariaDB,
Redis and etcd; two dispatchers, two executors and the monitor as
processes): each executor in turn gets SIGTERM and comes back, under
every-second jobs; no run fails and every firing runs exactly once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from crontrio.common.clock import now_ms
from testing_support.cluster import Cluster
from testing_support.services import wait_for

pytestmark = pytest.mark.xdist_group("cluster")
JOBS = 4


def succeeded_on(cluster: Cluster, address: str, since_ms: int) -> int:
    rows = cluster.sql(
        "SELECT COUNT(*) FROM runs WHERE status = 'succeeded' AND executor = %s AND started_ms > %s", (address, since_ms)
    )
    return int(rows[0][0])  # type: ignore[call-overload]


def test_rolling_restart_of_every_executor_fails_no_run(cluster: Cluster, tmp_path: Path) -> None:
    for service, name in (("executor", "e1"), ("executor", "e2"), ("dispatcher", "d1"), ("dispatcher", "d2"), ("monitor", "m")):
        cluster.add(service, name)
        cluster.start(name)
    ran = tmp_path / "ran.txt"
    for i in range(JOBS):
        cluster.sql(
            "INSERT INTO jobs (name, spec, command, retries) VALUES (%s, '* * * * * *', %s, 0)",
            (f"roll{i}", f'echo "$CRONTRIO_RUN_ID" >> {ran}'),
        )
    e1, e2 = cluster.members["e1"].address, cluster.members["e2"].address
    wait_for(lambda: succeeded_on(cluster, e1, 0) >= 2 and succeeded_on(cluster, e2, 0) >= 2, 30, "runs on both executors")
    begin_ms = now_ms()
    for name, address, other in (("e1", e1, e2), ("e2", e2, e1)):
        assert cluster.stop(name) == 0, cluster.log(name)
        stopped_ms = now_ms()
        wait_for(lambda o=other, t=stopped_ms: succeeded_on(cluster, o, t) >= 2 * JOBS, 30, f"runs while {name} is down")
        restarted_ms = now_ms()
        cluster.start(name)
        wait_for(lambda a=address, t=restarted_ms: succeeded_on(cluster, a, t) >= 2, 30, f"{name} to take runs again")
    end_ms = now_ms()
    cluster.sql("UPDATE jobs SET enabled = 0")

    def settled() -> list[tuple[object, ...]] | None:
        rows = cluster.sql(
            "SELECT run_id, job_id, scheduled_ms, attempt, status, error FROM runs WHERE scheduled_ms BETWEEN %s AND %s",
            (begin_ms, end_ms),
        )
        return None if any(r[4] in ("pending", "running") for r in rows) else rows

    rows = wait_for(settled, 30, "every firing of the restarts to end")
    bad = [r for r in rows if r[4] != "succeeded"]
    assert not bad, f"runs that did not succeed during the rolling restart: {bad}"
    per_job: dict[int, list[int]] = {}
    for _, job_id, scheduled, attempt, _, _ in rows:
        assert attempt == 1
        per_job.setdefault(int(job_id), []).append(int(scheduled))  # type: ignore[call-overload]
    assert len(per_job) == JOBS
    for seconds in per_job.values():
        seconds.sort()
        assert seconds == list(range(seconds[0], seconds[-1] + 1000, 1000)), f"a firing missing or twice: {seconds}"
    executed = Counter(ran.read_text().split())
    assert not {k: n for k, n in executed.items() if n > 1}, "a run executed twice"
    assert {str(r[0]) for r in rows} <= set(executed)
