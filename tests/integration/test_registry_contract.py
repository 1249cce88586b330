"""The Registry contract, run against the static list and a real etcd, plus
etcd discovery's failure modes: lease expiry, etcd restarts, partitions,
compaction, malformed values and dead endpoints.

Waits poll a condition until a deadline; nothing waits by sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aetcd  # type: ignore[import-untyped]
import pytest

from crontrio.common.registry.base import ExecutorRef, Registry
from crontrio.common.registry.dispatcher_watch import DispatcherRef, DispatcherWatcher
from crontrio.common.registry.etcd_registry import EtcdRegistry
from crontrio.common.registry.keys import dispatcher_key, executor_key, executors_prefix
from crontrio.common.registry.registration import EtcdRegistration
from crontrio.common.registry.static import StaticRegistry
from testing_support.servers import EtcdServer
from testing_support.services import free_port, wait_until

PREFIX = "/crontrio"
TTL = 2


def executor_value(n: int, group: str = "default") -> dict[str, Any]:
    address = f"10.0.0.{n}:5921"
    return {
        "id": address,
        "address": address,
        "host": f"10.0.0.{n}",
        "group": group,
        "labels": {"rack": f"r{n}"},
        "capacity": 4,
        "version": "0.1.0",
        "started_ms": 1_700_000_000_000 + n,
    }


def addresses(registry: Registry) -> set[str]:
    return {ref.address for ref in registry.live()}


class Registrations:
    """Makes EtcdRegistrations and closes whatever a test left running."""

    def __init__(self) -> None:
        self.made: list[EtcdRegistration] = []

    async def executor(self, endpoints: list[str], n: int, ttl: int = TTL, group: str = "default") -> EtcdRegistration:
        value = executor_value(n, group)
        reg = EtcdRegistration(endpoints, executor_key(PREFIX, group, value["id"]), value, ttl)
        self.made.append(reg)
        await reg.start()
        assert reg.registered
        return reg


@pytest.fixture
async def registrations() -> AsyncIterator[Registrations]:
    regs = Registrations()
    yield regs
    for reg in regs.made:
        await reg.close()


@pytest.fixture
async def etcd(etcd_server: EtcdServer) -> AsyncIterator[Any]:
    """A plain aetcd client, to change etcd behind the registry's back."""
    client = aetcd.Client("127.0.0.1", etcd_server.port, timeout=5)
    yield client
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), 5)


@pytest.fixture
async def watchers() -> AsyncIterator[list[Any]]:
    made: list[Any] = []
    yield made
    for watcher in made:
        await watcher.close()


class TcpProxy:
    """A TCP relay in front of etcd that a test can cut and restore: a network
    partition between one client and etcd while etcd itself stays up."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._generation = 0  # bumped by cut(): connections of an older one must die
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def cut(self) -> None:
        """Refuse new connections and break every open one."""
        self._generation += 1
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await asyncio.wait_for(asyncio.gather(*self._handlers, return_exceptions=True), 5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        generation = self._generation
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        if generation != self._generation:  # cut while we were connecting
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


@pytest.fixture
async def proxy(etcd_server: EtcdServer) -> AsyncIterator[TcpProxy]:
    relay = await TcpProxy(etcd_server.port).start()
    yield relay
    await relay.cut()


# -- the contract, for every Registry --------------------------------------------

STATIC_EXECUTORS = ["10.0.0.1:5921", "10.0.0.2:5921"]


@pytest.fixture(params=["static", "etcd"])
async def registry_case(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Registry, set[str]]]:
    """A started registry and the addresses it must list."""
    registry: Registry
    registrations = Registrations()  # closed here, before etcd_server stops
    if request.param == "static":
        registry = StaticRegistry(STATIC_EXECUTORS)
    else:
        server: EtcdServer = request.getfixturevalue("etcd_server")
        for n in (1, 2):
            await registrations.executor([server.endpoint], n)
        registry = EtcdRegistry([server.endpoint], PREFIX)
    await registry.start()
    yield registry, set(STATIC_EXECUTORS)
    await registry.close()
    for reg in registrations.made:
        await reg.close()


async def test_live_lists_what_was_registered(registry_case: tuple[Registry, set[str]]) -> None:
    registry, expected = registry_case
    await wait_until(lambda: addresses(registry) == expected, 5, f"live() == {expected}")
    for ref in registry.live():
        assert isinstance(ref, ExecutorRef)
        assert ref.host == ref.address.rpartition(":")[0]
        assert ref.group == "default"


async def test_live_returns_a_copy(registry_case: tuple[Registry, set[str]]) -> None:
    registry, expected = registry_case
    await wait_until(lambda: addresses(registry) == expected, 5, f"live() == {expected}")
    registry.live().clear()
    assert addresses(registry) == expected


async def test_start_twice_and_close_are_harmless(registry_case: tuple[Registry, set[str]]) -> None:
    registry, expected = registry_case
    await registry.start()
    await wait_until(lambda: addresses(registry) == expected, 5, f"live() == {expected}")


# -- etcd: registrations come and go -----------------------------------------------


async def test_registration_appears_with_its_value(
    etcd_server: EtcdServer, registrations: Registrations, watchers: list[Any]
) -> None:
    registry = EtcdRegistry([etcd_server.endpoint], PREFIX)
    watchers.append(registry)
    await registry.start()
    assert registry.live() == []
    await registrations.executor([etcd_server.endpoint], 7, group="php")
    await wait_until(lambda: registry.live(), 5, "the executor to appear")
    [ref] = registry.live()
    assert (ref.address, ref.group, ref.host, ref.labels) == ("10.0.0.7:5921", "php", "10.0.0.7", {"rack": "r7"})


async def test_graceful_close_removes_the_key_at_once(
    etcd_server: EtcdServer, registrations: Registrations, watchers: list[Any]
) -> None:
    registry = EtcdRegistry([etcd_server.endpoint], PREFIX)
    watchers.append(registry)
    await registry.start()
    reg = await registrations.executor([etcd_server.endpoint], 1, ttl=10)
    await wait_until(lambda: addresses(registry) == {"10.0.0.1:5921"}, 5, "the executor to appear")
    await reg.close()
    assert not reg.registered
    start = time.monotonic()
    await wait_until(lambda: not registry.live(), 5, "the executor to disappear")
    took = time.monotonic() - start
    assert took < 2, f"a revoked lease should delete the key at once, took {took:.1f}s (ttl 10)"


async def test_abandoned_registration_expires_after_ttl(
    etcd_server: EtcdServer, registrations: Registrations, watchers: list[Any]
) -> None:
    registry = EtcdRegistry([etcd_server.endpoint], PREFIX)
    watchers.append(registry)
    await registry.start()
    reg = await registrations.executor([etcd_server.endpoint], 1, ttl=TTL)
    await wait_until(lambda: addresses(registry) == {"10.0.0.1:5921"}, 5, "the executor to appear")
    await reg.abandon()  # a crash: no more refreshes, no revoke
    assert addresses(registry) == {"10.0.0.1:5921"}
    start = time.monotonic()
    await wait_until(lambda: not registry.live(), TTL + 4, "the abandoned key to expire")
    took = time.monotonic() - start
    assert took > TTL / 2, f"the key vanished after {took:.1f}s: revoked, not expired?"


# -- etcd: surviving trouble ---------------------------------------------------------


async def test_etcd_restart_registration_and_watch_come_back(
    etcd_server: EtcdServer,
    etcd: Any,
    registrations: Registrations,
    watchers: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="crontrio.common.registry")
    endpoints = [etcd_server.endpoint]
    registry = EtcdRegistry(endpoints, PREFIX)
    watchers.append(registry)
    await registry.start()
    a = await registrations.executor(endpoints, 1)
    b = await registrations.executor(endpoints, 2)
    await wait_until(lambda: addresses(registry) == {"10.0.0.1:5921", "10.0.0.2:5921"}, 5, "A and B listed")

    etcd_server.kill()
    await wait_until(lambda: not registry.watching and not a.registered, 5, "the outage to be noticed")
    await b.close()  # B stops while etcd is down: the revoke fails, its lease must expire instead
    etcd_server.start()
    # Made right after the restart, possibly before the registry's watch is back.
    direct = executor_value(3)
    await etcd.put(executor_key(PREFIX, "default", direct["id"]).encode(), json.dumps(direct).encode())

    await wait_until(lambda: a.registered, TTL + 5, "A to be registered again")
    await wait_until(lambda: registry.watching, TTL + 5, "the registry's watch to be back")
    await wait_until(
        lambda: addresses(registry) == {"10.0.0.1:5921", "10.0.0.3:5921"}, TTL + 5, "A and the direct key listed, B expired"
    )
    c = await registrations.executor(endpoints, 4)
    await wait_until(lambda: "10.0.0.4:5921" in addresses(registry), 5, "a registration made after the restart")
    assert c.registered
    assert registry.full_syncs == 1, "the watch should resume from its revision, not re-read the prefix"
    assert registry.resumes >= 1
    assert any("back at" in r.getMessage() for r in caplog.records), "the watch's recovery should be logged"
    lost = [r for r in caplog.records if "watch on" in r.getMessage() and " lost:" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.WARNING, "one warning per outage"
    unreachable = [r for r in caplog.records if "no etcd endpoint answers for" in r.getMessage() and a.key in r.getMessage()]
    assert len(unreachable) == 1, "one warning per outage"


async def test_registration_survives_losing_its_lease(
    etcd_server: EtcdServer, etcd: Any, registrations: Registrations, watchers: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crontrio.common.registry")
    registry = EtcdRegistry([etcd_server.endpoint], PREFIX)
    watchers.append(registry)
    await registry.start()
    reg = await registrations.executor([etcd_server.endpoint], 1)
    await wait_until(lambda: registry.live(), 5, "the executor to appear")
    old_lease = reg.lease_id
    await etcd.revoke_lease(old_lease)  # what an etcd that forgot the lease looks like
    await wait_until(lambda: reg.registered and reg.lease_id not in (None, old_lease), TTL + 3, "a new lease")
    kv = await etcd.get(reg.key.encode())
    assert kv is not None and kv.lease == reg.lease_id
    await wait_until(lambda: registry.revision >= kv.mod_revision, 5, "the registry to see the new put")
    assert addresses(registry) == {"10.0.0.1:5921"}
    assert any("re-registered" in r.getMessage() for r in caplog.records)


async def test_watch_resumes_from_its_revision_after_a_partition(
    etcd_server: EtcdServer, etcd: Any, proxy: TcpProxy, registrations: Registrations, watchers: list[Any]
) -> None:
    await registrations.executor([etcd_server.endpoint], 1, ttl=30)
    gone = await registrations.executor([etcd_server.endpoint], 2, ttl=30)
    registry = EtcdRegistry([proxy.endpoint], PREFIX)
    watchers.append(registry)
    await registry.start()
    await wait_until(lambda: len(registry.live()) == 2, 5, "both executors listed")

    await proxy.cut()
    await wait_until(lambda: not registry.watching, 5, "the registry to lose its watch")
    # Changes the registry cannot see as they happen.
    await gone.close()
    new = executor_value(3)
    await etcd.put(executor_key(PREFIX, "default", new["id"]).encode(), json.dumps(new).encode())
    assert len(registry.live()) == 2, "the view is kept (stale) while etcd is unreachable"

    await proxy.start()
    await wait_until(lambda: addresses(registry) == {"10.0.0.1:5921", "10.0.0.3:5921"}, 10, "changes made during the partition")
    assert registry.full_syncs == 1 and registry.resumes == 1


async def test_compacted_resume_point_falls_back_to_a_full_read(
    etcd_server: EtcdServer, etcd: Any, proxy: TcpProxy, registrations: Registrations, watchers: list[Any]
) -> None:
    gone = await registrations.executor([etcd_server.endpoint], 1, ttl=30)
    registry = EtcdRegistry([proxy.endpoint], PREFIX)
    watchers.append(registry)
    await registry.start()
    await wait_until(lambda: len(registry.live()) == 1, 5, "the executor listed")

    await proxy.cut()
    await wait_until(lambda: not registry.watching, 5, "the registry to lose its watch")
    await gone.close()
    new = executor_value(2)
    reply = await etcd.put(executor_key(PREFIX, "default", new["id"]).encode(), json.dumps(new).encode())
    await etcd.compact(reply.header.revision, physical=True)

    await proxy.start()
    await wait_until(lambda: addresses(registry) == {"10.0.0.2:5921"}, 10, "the state after compaction")
    assert registry.full_syncs == 2


async def test_malformed_values_are_ignored(
    etcd_server: EtcdServer, etcd: Any, registrations: Registrations, watchers: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crontrio.common.registry")
    base = executors_prefix(PREFIX)
    await etcd.put(f"{base}default/garbage".encode(), b"{not json")
    await etcd.put(f"{base}default/list".encode(), b"[1, 2]")
    registry = EtcdRegistry([etcd_server.endpoint], PREFIX)
    watchers.append(registry)
    await registry.start()
    assert registry.synced and registry.live() == []
    await etcd.put(f"{base}default/no-address".encode(), json.dumps({"id": "x", "address": 5}).encode())
    await etcd.put(f"{base}default/bad-bytes".encode(), b"\xff\xfe")
    await registrations.executor([etcd_server.endpoint], 1)
    await wait_until(lambda: addresses(registry) == {"10.0.0.1:5921"}, 5, "the valid executor, after the malformed ones")
    malformed = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(malformed) == 4, malformed
    assert registry.watching

    # A good key overwritten with garbage is dropped, not kept stale.
    value = executor_value(1)
    await etcd.put(executor_key(PREFIX, "default", value["id"]).encode(), b"oops")
    await wait_until(lambda: not registry.live(), 5, "the overwritten executor to be dropped")


async def test_a_dead_endpoint_first_is_skipped(
    etcd_server: EtcdServer, registrations: Registrations, watchers: list[Any]
) -> None:
    endpoints = [f"127.0.0.1:{free_port()}", etcd_server.endpoint]  # nothing listens on the first
    registry = EtcdRegistry(endpoints, PREFIX)
    watchers.append(registry)
    await registry.start()
    assert registry.synced
    await registrations.executor(endpoints, 1)
    await wait_until(lambda: addresses(registry) == {"10.0.0.1:5921"}, 5, "the executor via the live endpoint")


async def test_dispatcher_watcher_lists_live_dispatchers(etcd_server: EtcdServer, watchers: list[Any]) -> None:
    endpoints = [etcd_server.endpoint]
    watcher = DispatcherWatcher(endpoints, PREFIX)
    watchers.append(watcher)
    await watcher.start()
    value: dict[str, Any] = {"id": "host-a:5920", "address": "10.0.0.9:5920", "version": "0.1.0", "started_ms": 1_700_000_000_000}
    reg = EtcdRegistration(endpoints, dispatcher_key(PREFIX, value["id"]), value, TTL)
    await reg.start()
    try:
        await wait_until(lambda: watcher.live(), 5, "the dispatcher to appear")
        assert watcher.live() == [DispatcherRef("host-a:5920", "10.0.0.9:5920", "0.1.0", 1_700_000_000_000)]
    finally:
        await reg.close()
    await wait_until(lambda: not watcher.live(), 5, "the dispatcher to disappear")
