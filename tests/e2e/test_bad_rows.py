"""One bad row written with plain SQL stops nothing (issue 12, item 7).

With the real trio on SQLite and a real cluster on MariaDB: the valid jobs
keep firing, a valid job added after the bad row is scheduled, the
missed-firing check keeps working, a freshly started dispatcher starts, and
ListJobs/GetJob answer with the bad job marked invalid and why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from crontrio.common.config import DatabaseConfig
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc
from testing_support.cluster import Cluster
from testing_support.servers import EtcdServer, RedisServer
from testing_support.services import wait_for
from testing_support.trio import Trio, make_trio, stop_trio

DEEP_JSON = "[" * 50_000  # MariaDB stores it; json.loads raises RecursionError


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _runs_since(sql: Callable[..., list[tuple[object, ...]]], job: str, since_ms: int, status: str = "succeeded") -> int:
    rows = sql("SELECT COUNT(*) FROM runs WHERE job_name = %s AND scheduled_ms > %s AND status = %s", (job, since_ms, status))
    return int(rows[0][0])  # type: ignore[call-overload]


def _check_listed_invalid(address: str, bad: dict[str, str]) -> None:
    """Every bad job (by name fragment -> field its reason names) is listed
    invalid, GetJob by id says the same, and the good ones are valid."""
    with grpc.insecure_channel(address) as channel:
        admin = pb_grpc.AdminStub(channel)
        jobs = admin.ListJobs(pb.ListJobsRequest(), timeout=30).jobs
        for fragment, field in bad.items():
            (job,) = [j for j in jobs if fragment in j.name]
            assert field in job.invalid_reason and job.next_fire_ms == 0, (job.name, job.invalid_reason)
            assert admin.GetJob(pb.JobRef(id=job.id), timeout=30).invalid_reason == job.invalid_reason
        good = [j for j in jobs if j.name in ("before", "after")]
        assert len(good) == 2 and all(not j.invalid_reason and j.next_fire_ms for j in good)


# ------------------------------------------------------------------ SQLite


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[Trio]:
    t = make_trio(tmp_path, extra={"monitor": {"missed_after_seconds": "2"}})
    try:
        yield t
    finally:
        stop_trio(t)


def test_bad_rows_in_sqlite_stop_nothing(trio: Trio) -> None:
    for service in ("executor", "dispatcher", "monitor"):
        trio.start(service)

    def sql(statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        return trio.sql(statement.replace("%s", "?"), params)

    sql("INSERT INTO jobs (name, spec, command) VALUES ('before', '* * * * * *', 'true')")
    wait_for(lambda: _runs_since(sql, "before", 0), 20, "the valid job to fire")
    sql("INSERT INTO jobs (name, spec, command, retries) VALUES ('three', '* * * * * *', 'true', 'three')")
    sql("INSERT INTO jobs (name, spec, command) VALUES (CAST(X'6e6f7475746638ff' AS TEXT), '* * * * * *', 'true')")
    sql(f"INSERT INTO jobs (name, spec, command, keywords) VALUES ('deep', '* * * * * *', 'true', '{DEEP_JSON}')")
    sql("INSERT INTO jobs (name, spec, command) VALUES (?, '* * * * * *', 'true')", ("evil\nFORGED-line",))
    bad_at = _now_ms()
    sql("INSERT INTO jobs (name, spec, command) VALUES ('after', '* * * * * *', 'true')")
    wait_for(lambda: _runs_since(sql, "after", 0), 20, "a valid job added after the bad rows to fire")
    wait_for(lambda: _runs_since(sql, "before", bad_at) >= 2, 20, "the valid job to keep firing")
    assert sql("SELECT COUNT(*) FROM runs WHERE job_id IN (SELECT id FROM jobs WHERE name NOT IN ('before', 'after'))")[0][0] == 0

    bad = {"three": "retries", "notutf8": "name", "deep": "keywords", "FORGED-line": "name"}
    _check_listed_invalid(trio.dispatcher, bad)
    listed = trio.cronctl("job", "list")
    assert listed.returncode == 0 and listed.stdout.count("invalid") == 4, listed.stdout + listed.stderr
    assert "evil\\nFORGED-line" in listed.stdout  # shown escaped, on its row
    shown = json.loads(trio.cronctl("job", "show", "three", "--json").stdout)
    assert "retries: expected an integer" in shown["invalid_reason"]
    # Reported once each, not at every sync (several syncs ran since: "after" was loaded and fired).
    log = trio.procs["dispatcher"].log_text()
    assert log.count("job three (id 2) is not scheduled") == 1, log[-5000:]
    # A name with a newline is logged escaped: it cannot forge a log line.
    assert "job evil\\nFORGED-line (id 5) is not scheduled" in log
    assert not [line for line in log.splitlines() if line.startswith("FORGED")]

    # The missed-firing check still works: with the dispatcher stopped, the
    # monitor records the valid job's firings as missed.
    assert trio.procs["dispatcher"].stop() == 0
    stopped_at = _now_ms()
    wait_for(lambda: _runs_since(sql, "before", stopped_at, "missed"), 20, "the monitor to record a missed firing")
    # A freshly started dispatcher starts and fires again.
    trio.start("dispatcher")
    restarted_at = _now_ms()
    wait_for(lambda: _runs_since(sql, "before", restarted_at), 20, "the restarted dispatcher to fire")
    _check_listed_invalid(trio.dispatcher, bad)


# ----------------------------------------------------------------- MariaDB


@pytest.fixture
def cluster(
    tmp_path: Path, mariadb_config: DatabaseConfig, redis_server: RedisServer, etcd_server: EtcdServer
) -> Iterator[Cluster]:
    c = Cluster(tmp_path, mariadb_config, redis_server, etcd_server)
    try:
        yield c
    finally:
        codes = c.shutdown()
        print(c.logs())  # shown by pytest only when the test failed
        assert not {n: code for n, code in codes.items() if code != 0}


def test_bad_row_in_mariadb_stops_nothing(cluster: Cluster) -> None:
    for service, name in (("executor", "e1"), ("dispatcher", "d1"), ("monitor", "m")):
        cluster.add(service, name)
        cluster.start(name)
    sql = cluster.sql
    sql("INSERT INTO jobs (name, spec, command) VALUES ('before', '* * * * * *', 'true')")
    wait_for(lambda: _runs_since(sql, "before", 0), 30, "the valid job to fire")
    sql("INSERT INTO jobs (name, spec, command, keywords) VALUES ('deep', '* * * * * *', 'true', %s)", (DEEP_JSON,))
    bad_at = _now_ms()
    sql("INSERT INTO jobs (name, spec, command) VALUES ('after', '* * * * * *', 'true')")
    wait_for(lambda: _runs_since(sql, "after", 0), 30, "a valid job added after the bad row to fire")
    wait_for(lambda: _runs_since(sql, "before", bad_at) >= 2, 30, "the valid job to keep firing")
    _check_listed_invalid(cluster.members["d1"].address, {"deep": "keywords"})
    assert cluster.log("d1").count("job deep (id 2) is not scheduled") == 1

    assert cluster.stop("d1") == 0
    stopped_at = _now_ms()
    wait_for(lambda: _runs_since(sql, "before", stopped_at, "missed"), 40, "the monitor to record a missed firing")
    cluster.add("dispatcher", "d2")
    cluster.start("d2")  # a fresh dispatcher starts despite the bad row
    started_at = _now_ms()
    wait_for(lambda: _runs_since(sql, "before", started_at), 30, "the fresh dispatcher to fire")
    _check_listed_invalid(cluster.members["d2"].address, {"deep": "keywords"})
