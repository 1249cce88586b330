"""The console in distributed mode finds the live dispatchers in etcd and
fails over past one that does not answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aetcd
import httpx
import pytest

from crontrio.common.registry.keys import dispatcher_key
from testing_support.servers import EtcdServer
from testing_support.services import ServiceProcess, free_port, wait_for
from testing_support.trio import Trio, make_trio, stop_trio
from tests.e2e.console_helpers import admin_password, bearer, console_url, wait_http


@pytest.fixture
def etcd_trio(tmp_path: Path, etcd_server: EtcdServer) -> Iterator[Trio]:
    t = make_trio(tmp_path, extra={"etcd": {"endpoints": etcd_server.endpoint, "lease_ttl": "3"}})
    try:
        for service in ("executor", "dispatcher", "monitor"):
            t.start(service)
        wait_http(console_url(t), "the console")
        yield t
    finally:
        stop_trio(t)


async def _register_dead_dispatcher(etcd_server: EtcdServer, address: str) -> None:
    client = aetcd.Client("127.0.0.1", etcd_server.port, timeout=5)
    try:
        value = {"id": "0-dead", "address": address, "version": "0.1.0", "started_ms": 1}
        await client.put(dispatcher_key("/crontrio", "0-dead").encode(), json.dumps(value).encode())
    finally:
        await client.close()


def test_console_finds_dispatchers_in_etcd_and_skips_a_dead_one(etcd_trio: Trio, etcd_server: EtcdServer) -> None:
    dead = f"127.0.0.1:{free_port()}"
    asyncio.run(_register_dead_dispatcher(etcd_server, dead))  # sorted first: tried first
    # A console alone whose [dispatcher] listen leads nowhere: only etcd can tell it where to go.
    port = free_port()
    env = {"CRONTRIO_CONSOLE_LISTEN": f"127.0.0.1:{port}", "CRONTRIO_DISPATCHER_LISTEN": dead}
    console = ServiceProcess("console", etcd_trio.conf, etcd_trio.root / "console.log", env=env)
    url = f"http://127.0.0.1:{port}"
    token = ""

    def logged_in() -> bool:
        nonlocal token
        reply = httpx.post(url + "/api/v1/login", json={"user": "admin", "password": admin_password(etcd_trio)}, timeout=30)
        token = reply.json().get("token", "") if reply.status_code == 200 else ""
        return bool(token)

    try:
        wait_for(logged_in, 20, "a login through the dispatcher found in etcd")
        listed = httpx.get(url + "/api/v1/dispatchers", headers=bearer(token), timeout=30).json()["dispatchers"]
        assert {d["address"] for d in listed} == {dead, etcd_trio.dispatcher}
        assert httpx.get(url + "/api/v1/jobs", headers=bearer(token), timeout=30).status_code == 200
    finally:
        assert console.stop() == 0, console.log_text()
