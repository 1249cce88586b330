"""Fixtures: the trio as real processes (testing_support/trio.py starts it),
and the distributed cluster on MariaDB, Redis and etcd (testing_support/cluster.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crontrio.common.config import DatabaseConfig
from testing_support.cluster import Cluster
from testing_support.servers import EtcdServer, RedisServer
from testing_support.trio import Trio, make_trio, stop_trio


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[Trio]:
    t = make_trio(tmp_path)
    try:
        yield t
    finally:
        stop_trio(t)


@pytest.fixture(scope="module")
def busy_trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    """One trio with two executors shared by a module's tests, each on its own jobs."""
    t = make_trio(tmp_path_factory.mktemp("trio"), executors=2)
    try:
        for service in ("executor", "executor2", "dispatcher", "monitor"):
            t.start(service)
        yield t
    finally:
        stop_trio(t)


@pytest.fixture
def cluster(
    tmp_path: Path, mariadb_config: DatabaseConfig, redis_server: RedisServer, etcd_server: EtcdServer
) -> Iterator[Cluster]:
    c = Cluster(tmp_path, mariadb_config, redis_server, etcd_server)
    try:
        yield c
    finally:
        codes = c.shutdown()
        bad = {n: code for n, code in codes.items() if code != 0}
        print(c.logs())  # shown by pytest only when the test failed
        assert not bad, f"services did not stop cleanly on SIGTERM: {bad}"
