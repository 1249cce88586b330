"""A dispatcher `kill -9`ed with hundreds of large results in flight: the
monitor collects every real result from the executor's journal, although
together they exceed the gRPC message limit, and marks none lost.

Real MariaDB, Redis and etcd; the executor, dispatchers and the monitor as
real processes (testing_support/cluster.py).
"""

from __future__ import annotations

import fcntl
import time
from pathlib import Path

import grpc
import pytest

from crontrio.common.cluster import CLUSTER_HEADER
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc
from testing_support.cluster import Cluster
from testing_support.services import cluster_secret, wait_for

pytestmark = pytest.mark.xdist_group("cluster")

RUNS = 300
OUTPUT_BYTES = 64 * 1024  # = [executor] output_limit_bytes: each result keeps it all
GRPC_MESSAGE_LIMIT = 16 * 1024 * 1024


def count(cluster: Cluster, where: str, params: tuple[object, ...] = ()) -> int:
    return int(cluster.sql(f"SELECT COUNT(*) FROM runs WHERE {where}", params)[0][0])  # type: ignore[call-overload]


def test_results_of_a_killed_dispatcher_beyond_the_message_limit_are_collected_not_rerun(
    cluster: Cluster, tmp_path: Path
) -> None:
    assert RUNS * OUTPUT_BYTES > GRPC_MESSAGE_LIMIT  # the point of the test
    for service, name in (("executor", "e1"), ("dispatcher", "d1"), ("dispatcher", "d2"), ("monitor", "m")):
        cluster.add(service, name)
        cluster.start(name)
    # Every run prints its 64 KiB, then waits on a lock the test holds, so
    # that all of them are still going when d1 dies (no polling shell loops).
    gate = tmp_path / "gate"
    gate.touch()
    holder = gate.open("rb")
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        command = f"head -c {OUTPUT_BYTES} /dev/zero | tr '\\0' x; flock -s {gate} true"
        for i in range(RUNS):
            # Yearly: they never fire by themselves here. retries = 1: a run
            # wrongly marked lost would be retried as attempt 2 by d2.
            cluster.sql(
                "INSERT INTO jobs (name, spec, command, retries, retry_interval_seconds) VALUES (%s, '0 0 1 1 *', %s, 1, 0)",
                (f"big{i:03d}", command),
            )
        d1 = cluster.members["d1"].address
        with grpc.insecure_channel(d1) as channel:
            admin = pb_grpc.AdminStub(channel)
            for i in range(RUNS):
                admin.RunJob(pb.JobRef(name=f"big{i:03d}"), timeout=10)
        wait_for(
            lambda: count(cluster, "status = 'running' AND dispatcher LIKE %s", ("d1@%",)) == RUNS,
            60,
            f"all {RUNS} runs to be running on the executor, recorded by d1",
        )
        cluster.kill("d1")
    finally:
        holder.close()  # the runs finish; their results wait in e1's journal
    started = time.monotonic()
    wait_for(lambda: count(cluster, "status IN ('pending', 'running')") == 0, 90, "every run to be settled")
    took = time.monotonic() - started

    rows = cluster.sql("SELECT run_id, attempt, status, exit_code, LENGTH(output), error FROM runs ORDER BY run_id")
    assert len(rows) == RUNS, f"{len(rows) - RUNS} runs more than fired (attempt 2?): {[r for r in rows if r[1] != 1][:3]}"
    for run_id, attempt, run_status, exit_code, output_length, error in rows:
        assert (attempt, run_status, exit_code, output_length) == (1, "succeeded", 0, OUTPUT_BYTES), (run_id, run_status, error)
    monitor_log = cluster.log("m")
    assert monitor_log.count("is gone; collected the result from executor") == RUNS
    assert "marked lost" not in monitor_log
    # And acknowledged: e1's journal is empty again.
    secret = [(CLUSTER_HEADER, cluster_secret(cluster.conf.parent))]
    with grpc.insecure_channel(cluster.members["e1"].address) as channel:
        executor = pb_grpc.ExecutorStub(channel)
        wait_for(lambda: executor.Status(pb.ExecutorStatusRequest(), timeout=5, metadata=secret).unacknowledged == 0, 10, "acks")
    print(f"\nthe monitor settled {RUNS} results of {RUNS * OUTPUT_BYTES / 1e6:.1f} MB in {took:.1f}s")
