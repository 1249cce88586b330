"""Channels to executors, one per address, reused across runs."""

from __future__ import annotations

import grpc

from crontrio.common.config import TlsConfig
from crontrio.common.grpc_channel import make_channel
from crontrio.common.tls import load_tls
from crontrio.dispatcher.executor_session import ExecutorSession
from crontrio.protos import crontrio_pb2_grpc as pb_grpc


class ExecutorClients:
    """`tls` set ([tls] internal = true): executors are dialled with mutual
    TLS, presenting this dispatcher's certificate. Every call carries
    `cluster_secret` (common/cluster.py), which executors without mTLS require."""

    def __init__(self, tls: TlsConfig | None = None, *, cluster_secret: str | None = None) -> None:
        self._tls = tls
        self._cluster_secret = cluster_secret
        if tls is not None:
            load_tls(tls)  # a bad [tls] file stops the dispatcher at start, not at the first run
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, pb_grpc.ExecutorStub] = {}
        self._sessions: dict[str, ExecutorSession] = {}

    def stub(self, address: str) -> pb_grpc.ExecutorStub:
        stub = self._stubs.get(address)
        if stub is None:
            channel = make_channel(address, self._tls, client_cert=True, cluster_secret=self._cluster_secret)
            self._channels[address] = channel
            stub = self._stubs[address] = pb_grpc.ExecutorStub(channel)
        return stub

    def session(self, address: str) -> ExecutorSession | None:
        """The Session to send runs on; None when the executor has none."""
        session = self._sessions.get(address)
        if session is None:
            session = self._sessions[address] = ExecutorSession(self.stub(address), address)
        return None if session.unsupported else session

    async def close(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
