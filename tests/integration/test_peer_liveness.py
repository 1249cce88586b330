"""PeerLiveness against real gRPC servers: a dispatcher that refuses
connections is dead, one that answers (even NOT_SERVING) is alive."""

from __future__ import annotations

import pytest

from crontrio.common.grpc_server import ServiceServer
from crontrio.dispatcher.peers import PeerLiveness
from testing_support.services import free_port


@pytest.mark.asyncio
async def test_without_a_registry_every_peer_counts_as_alive() -> None:
    assert await PeerLiveness(lambda: None).alive("d1@1")


@pytest.mark.asyncio
async def test_a_peer_that_is_not_registered_is_dead() -> None:
    assert not await PeerLiveness(lambda: {"d2@1": "127.0.0.1:1"}).alive("d1@1")


@pytest.mark.asyncio
async def test_a_registered_peer_that_refuses_connections_is_dead() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    assert not await PeerLiveness(lambda: {"d1@1": address}).alive("d1@1")


@pytest.mark.asyncio
async def test_a_registered_peer_that_answers_is_alive_even_while_draining() -> None:
    address = f"127.0.0.1:{free_port()}"
    server = ServiceServer(address, ["crontrio.v1.Control"])
    await server.start()
    try:
        peers = PeerLiveness(lambda: {"d1@1": address})
        assert await peers.alive("d1@1")
        await server.set_serving(False)  # a dispatcher draining its firings still runs them
        assert await PeerLiveness(lambda: {"d1@1": address}).alive("d1@1")
    finally:
        await server.stop(grace=0)
    # Once gone, a fresh look (the answer is cached briefly) calls it dead.
    assert not await PeerLiveness(lambda: {"d1@1": address}).alive("d1@1")
