"""Shared fixtures of the integration tests: `store`, the store on SQLite and
on a real MariaDB (a test using it runs once on each; a module may define its
own `store` to narrow that), and `other`, a second dispatcher's store on the
same database; and for the executor tests, `stub`, talking to
the module's own `executor` (module scope)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from crontrio.common.config import DatabaseConfig
from crontrio.common.store.engine import make_engine
from crontrio.common.store.migrate import ensure_schema
from crontrio.common.store.sql_store import SqlStore
from crontrio.protos import crontrio_pb2_grpc
from testing_support.executor import Executor


@pytest_asyncio.fixture
async def stub(executor: Executor) -> AsyncIterator[crontrio_pb2_grpc.ExecutorStub]:
    async with executor.channel() as channel:
        yield crontrio_pb2_grpc.ExecutorStub(channel)


@pytest.fixture(params=["sqlite", "mariadb"])
def store_config(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseConfig:
    """A fresh database on SQLite, then on the worker's real MariaDB."""
    if request.param == "sqlite":
        return DatabaseConfig(driver="sqlite", path=str(tmp_path / "store.db"))
    cfg: DatabaseConfig = request.getfixturevalue("mariadb_config")
    return cfg


@pytest.fixture
def store(store_config: DatabaseConfig) -> Iterator[SqlStore]:
    engine = make_engine(store_config)
    ensure_schema(engine, store_config)
    s = SqlStore(engine)
    yield s
    s.close()


@pytest.fixture
def other(store: SqlStore, store_config: DatabaseConfig) -> Iterator[SqlStore]:
    """A second dispatcher's store on the same database."""
    second = SqlStore(make_engine(store_config))
    yield second
    second.close()
