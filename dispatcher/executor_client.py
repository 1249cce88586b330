"""Channels to executors, one per address, reused across runs."""

from __future__ import annotations

import grpc

from common.grpc_server import insecure_channel
from protos import crontrio_pb2_grpc as pb_grpc


class ExecutorClients:
    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, pb_grpc.ExecutorStub] = {}

    def stub(self, address: str) -> pb_grpc.ExecutorStub:
        stub = self._stubs.get(address)
        if stub is None:
            channel = insecure_channel(address)
            self._channels[address] = channel
            stub = self._stubs[address] = pb_grpc.ExecutorStub(channel)
        return stub

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
