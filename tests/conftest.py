"""Fixtures for real database, Redis and etcd servers (see testing_support/servers.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from crontrio.common.config import DatabaseConfig
from testing_support.servers import EtcdServer, MariaDBServer, RedisServer
from testing_support.services import METRICS_OFF

# /metrics listens on fixed ports by default (5924, 5925): services that
# tests start at the same time would fight over them. Off in every child
# process, unless a test's conf sets metrics_listen (testing_support/services.py).
for _name, _value in METRICS_OFF.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    """One MariaDB per test worker: starting one costs seconds, a database milliseconds."""
    server = MariaDBServer(tmp_path_factory.mktemp("mariadb")).start()
    yield server
    server.stop()


@pytest.fixture
def mariadb_config(mariadb_server: MariaDBServer) -> Iterator[DatabaseConfig]:
    """A fresh, empty database on the worker's MariaDB, as a [database] section."""
    name = mariadb_server.create_database()
    yield DatabaseConfig(
        driver="mysql",
        host="127.0.0.1",
        port=mariadb_server.port,
        username=mariadb_server.user,
        password=mariadb_server.password,
        database=name,
    )
    mariadb_server.drop_database(name)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def etcd_server(tmp_path: Path) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path).start()
    yield server
    server.stop()
