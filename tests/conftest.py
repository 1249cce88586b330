"""Fixtures for real database, Redis and etcd servers (see testing_support/servers.py),
and the xdist_group marks made to work again under `--dist loadgroup`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.nodeid import NodeId

from crontrio.common.config import DatabaseConfig
from testing_support.servers import EtcdServer, MariaDBServer, RedisServer
from testing_support.services import METRICS_OFF

# /metrics listens on fixed ports by default (5924, 5925): services that
# tests start at the same time would fight over them. Off in every child
# process, unless a test's conf sets metrics_listen (testing_support/services.py).
for _name, _value in METRICS_OFF.items():
    os.environ.setdefault(_name, _value)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give each xdist_group-marked test its group as a nodeid suffix ("...@cluster").

    `--dist loadgroup` sends the tests whose ids share a suffix to one worker;
    pytest-xdist 3.8 adds it by assigning `item._nodeid`, which pytest 9 no
    longer reads (the id is `item._id`). Without this every mark was ignored:
    a module's fixtures (the bench quick run, a module's trio) were set up on
    both workers, and the "cluster"-sized tests ran side by side.
    """
    if not getattr(config.option, "loadgroup", False):  # set on xdist workers by --dist loadgroup
        return
    for item in items:
        names = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
        suffix = "@" + "_".join(sorted(names))
        if names and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)


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
    yield mariadb_server.database_config(name)
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
