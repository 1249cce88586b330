"""Connections of HTTP runs held for an instant are opened before it
(executor/http_warmup.py): as many as the runs to each origin, up to the
pool's limit; no request is sent ahead; the runs' requests then use them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from crontrio.common.clock import now_ms
from crontrio.executor import http_warmup
from crontrio.executor.http_task import HttpClients, run_http
from crontrio.protos import crontrio_pb2
from testing_support.counting_http import CountingServer
from testing_support.services import wait_until


@pytest.fixture
async def server() -> AsyncIterator[CountingServer]:
    counting = CountingServer()
    srv = await counting.start()
    yield counting
    srv.close()


@pytest.fixture
async def clients() -> AsyncIterator[HttpClients]:
    made = HttpClients(max_connections=5)
    yield made
    await made.aclose()


async def settled(clients: HttpClients) -> None:
    """Every warm-up asked for so far has ended (what it opened is open)."""
    await wait_until(lambda: clients.warmer.idle, 10, "the warm-ups to end")


def task(port: int, path: str = "/job") -> crontrio_pb2.HttpTask:
    return crontrio_pb2.HttpTask(url=f"http://127.0.0.1:{port}{path}", method="GET")


async def test_the_connections_of_an_instant_are_open_before_it_and_its_runs_use_them(
    server: CountingServer, clients: HttpClients
) -> None:
    told: list[tuple[int, int]] = []
    clients.warmer.report = lambda ready, failed: told.append((ready, failed))
    instant = now_ms() + 1_500
    for i in range(3):
        clients.warmer.expect(task(server.port, f"/job{i}"), instant)
    await wait_until(lambda: server.connections == 3, 10, "3 connections opened ahead")
    assert server.requests == 0, "a request went out before its time"
    assert now_ms() < instant

    async def run(i: int) -> None:
        result = await run_http(clients, task(server.port, f"/job{i}"), timeout_seconds=10, on_head=bytes, on_body=bytes)
        assert result.succeeded, result

    await asyncio.gather(*(run(i) for i in range(3)))
    assert server.requests == 3
    assert server.connections == 3, "the runs opened connections of their own"
    assert told == [(3, 0)]


async def test_no_more_connections_than_the_pool_holds_and_later_chunks_add_none(
    server: CountingServer, clients: HttpClients
) -> None:
    instant = now_ms() + 1_500
    for _ in range(8):  # a batch of 8 runs, pool limit 5
        clients.warmer.expect(task(server.port), instant)
    await wait_until(lambda: server.connections == 5, 10, "5 connections opened ahead")
    for _ in range(4):  # the rest of the batch, in a later message
        clients.warmer.expect(task(server.port), instant)
    # Another instant to the same origin needs nothing new either.
    clients.warmer.expect(task(server.port), instant + 1_000)
    await settled(clients)
    assert server.connections == 5
    assert server.requests == 0


async def test_a_warm_up_takes_only_connections_free_now_and_never_waits_for_one(
    server: CountingServer, clients: HttpClients
) -> None:
    server.answering = False  # runs' requests hold the pool's connections

    def start(count: int) -> list[asyncio.Task[object]]:
        return [
            asyncio.create_task(run_http(clients, task(server.port, "/slow"), timeout_seconds=60, on_head=bytes, on_body=bytes))
            for _ in range(count)
        ]

    going = start(3)
    try:
        await wait_until(lambda: server.requests == 3, 10, "3 requests in flight")
        for _ in range(5):
            clients.warmer.expect(task(server.port), now_ms() + 30_000)
        await settled(clients)
        assert server.connections == 5  # 3 in flight, 2 warmed: what was free
        going += start(2)
        await wait_until(lambda: server.requests == 5, 10, "5 requests in flight, the pool full")
        # A warm-up waiting for a connection would be handed the next one a
        # run gives back, ahead of runs waiting for it: with none free, none.
        clients.warmer.expect(task(server.port), now_ms() + 40_000)
        await settled(clients)
        assert server.connections == 5
    finally:
        for run in going:
            run.cancel()
        await asyncio.gather(*going, return_exceptions=True)


async def test_an_instant_too_near_and_a_proxied_url_are_left_to_the_runs(
    server: CountingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    monkeypatch.setenv("NO_PROXY", "")
    proxied = HttpClients(max_connections=5)
    try:
        proxied.warmer.expect(task(server.port), now_ms() + 1_500)
        proxied.warmer.expect(crontrio_pb2.HttpTask(url="http://example.invalid/x"), now_ms() + 1_500)
        await settled(proxied)
    finally:
        await proxied.aclose()
    monkeypatch.delenv("HTTP_PROXY")
    direct = HttpClients(max_connections=5)
    try:
        direct.warmer.expect(task(server.port), now_ms() + http_warmup.MARGIN_MS // 2)
        # The one warm-up that does happen, to show the two above would have been seen.
        direct.warmer.expect(task(server.port, "/other"), now_ms() + 1_500)
        await settled(direct)
        assert server.connections == 1
    finally:
        await direct.aclose()


async def test_an_origin_that_refuses_connections_is_no_error(clients: HttpClients) -> None:
    # A port nothing listens on (bound, then closed).
    srv = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    told: list[tuple[int, int]] = []
    clients.warmer.report = lambda ready, failed: told.append((ready, failed))
    clients.warmer.expect(task(port), now_ms() + 1_500)
    await settled(clients)
    assert told == [(0, 1)]
    result = await run_http(clients, task(port), timeout_seconds=5, on_head=bytes, on_body=bytes)
    assert not result.succeeded and "connection refused" in result.error
