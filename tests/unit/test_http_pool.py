"""The HTTP tasks' connection pool: sized from [executor] http_max_connections,
per host as in all, never past half the open files limit."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from crontrio.common.config import load_config
from crontrio.common.errors import ConfigError
from crontrio.executor.http_task import MAX_CONNECTIONS, HttpClients, pool_size, run_http
from crontrio.protos import crontrio_pb2 as pb


def test_the_pool_takes_what_is_asked_up_to_half_the_open_files() -> None:
    assert pool_size(1000, open_files=65536) == 1000
    assert pool_size(5000, open_files=4096) == 2048
    assert pool_size(0, open_files=4096) == 2048  # "no limit" still leaves descriptors for the rest
    assert pool_size(0, open_files=resource.RLIM_INFINITY) == 0  # aiohttp's "no limit"
    assert pool_size(300, open_files=resource.RLIM_INFINITY) == 300


async def test_one_host_may_take_the_whole_pool() -> None:
    clients = HttpClients(800)
    try:
        connector = clients.session().connector
        assert connector is not None
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        expected = pool_size(800, open_files=soft)
        # aiohttp's defaults would be 100 in all and no per-host limit.
        assert (connector.limit, connector.limit_per_host) == (expected, expected)
    finally:
        await clients.aclose()


def test_configured_checked_and_shipped(tmp_path: Path) -> None:
    path = tmp_path / "conf.ini"
    path.write_text("[executor]\nhttp_max_connections = 4000\n")
    assert load_config(path, env={}).executor.http_max_connections == 4000
    path.write_text("")
    assert load_config(path, env={}).executor.http_max_connections == MAX_CONNECTIONS
    path.write_text("[executor]\nhttp_max_connections = -1\n")
    with pytest.raises(ConfigError, match=r"executor\.http_max_connections: must not be negative"):
        load_config(path, env={})
    for name in ("conf.ini", "conf.distributed.ini"):
        conf = Path(__file__).resolve().parents[2] / "conf" / name
        assert load_config(conf, env={}).executor.http_max_connections == MAX_CONNECTIONS
        assert "\nhttp_max_connections = " in conf.read_text()


async def test_a_task_url_is_parsed_once_and_a_bad_one_fails_as_aiohttp_says() -> None:
    clients = HttpClients()
    try:
        first = clients.url("http://127.0.0.1:1/ping?x=1")
        assert first is clients.url("http://127.0.0.1:1/ping?x=1")
        assert str(first) == "http://127.0.0.1:1/ping?x=1"
        assert clients.url("http://[::1") == "http://[::1"  # left to aiohttp
        result = await run_http(
            clients,
            pb.HttpTask(url="http://[::1"),
            timeout_seconds=5,
            on_head=lambda _: None,
            on_body=lambda _: None,
        )
        assert not result.succeeded and result.error.startswith("InvalidUrlClientError"), result
    finally:
        await clients.aclose()
