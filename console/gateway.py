"""The console's way to the admin API: gRPC calls carrying the caller's
bearer token, on the first dispatcher that answers.

The console holds no credential of its own: every call is made with the
session or API token of the person or script it serves, so the dispatcher
decides what is allowed and audits it under their name.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from crontrio.common.auth import AUTH_HEADER
from crontrio.common.config import TlsConfig
from crontrio.common.grpc_channel import CHANNEL_OPTIONS
from crontrio.common.tls import channel_credentials
from crontrio.protos import crontrio_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
CALL_TIMEOUT_SECONDS = 15.0
# A dispatcher that does not answer these is skipped for the next one.
_FAILOVER_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class NoDispatcherError(Exception):
    """No dispatcher answered."""


class Gateway:
    """`dispatchers`: a fixed list of addresses, or a function returning the
    live ones right now (found in etcd in distributed mode)."""

    def __init__(self, dispatchers: list[str] | Callable[[], list[str]], tls: TlsConfig | None = None) -> None:
        if callable(dispatchers):
            self._addresses = dispatchers
        else:
            fixed = list(dispatchers)
            self._addresses = lambda: fixed
        self._tls = tls
        self._stubs: dict[str, pb_grpc.AdminStub] = {}
        self._channels: list[grpc.aio.Channel] = []
        self._preferred = ""  # the last one that answered is tried first

    def _stub(self, address: str) -> pb_grpc.AdminStub:
        stub = self._stubs.get(address)
        if stub is None:
            if self._tls is not None:
                creds = channel_credentials(self._tls, client_cert=False)
                channel = grpc.aio.secure_channel(address, creds, options=CHANNEL_OPTIONS)
            else:
                channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
            self._channels.append(channel)
            stub = self._stubs[address] = pb_grpc.AdminStub(channel)
        return stub

    def _order(self) -> list[str]:
        addresses = self._addresses()
        if self._preferred in addresses:
            addresses = [self._preferred] + [a for a in addresses if a != self._preferred]
        return addresses

    @staticmethod
    def metadata(token: str) -> tuple[tuple[str, str], ...]:
        return ((AUTH_HEADER, f"Bearer {token}"),) if token else ()

    async def call(self, method: str, request: Any, token: str, extra: tuple[tuple[str, str], ...] = ()) -> Any:
        """Admin.<method>(request) with the caller's token (and `extra`
        metadata); grpc.aio.AioRpcError for a refusal, NoDispatcherError when
        no dispatcher answers."""
        failures = []
        for address in self._order():
            try:
                reply = await getattr(self._stub(address), method)(
                    request, metadata=self.metadata(token) + extra, timeout=CALL_TIMEOUT_SECONDS
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() in _FAILOVER_CODES:
                    failures.append(f"{address}: {exc.details()}")
                    continue
                raise
            self._preferred = address
            return reply
        log.warning("no dispatcher answered %s: %s", method, "; ".join(failures) or "none known")
        raise NoDispatcherError("; ".join(failures) or "no dispatcher known")

    async def stream(self, method: str, request: Any, token: str) -> AsyncIterator[Any]:
        """A server-streaming call; fails over only before anything was received."""
        failures = []
        for address in self._order():
            received = False
            try:
                async for item in getattr(self._stub(address), method)(request, metadata=self.metadata(token)):
                    received = True
                    yield item
                return
            except grpc.aio.AioRpcError as exc:
                if not received and exc.code() in _FAILOVER_CODES:
                    failures.append(f"{address}: {exc.details()}")
                    continue
                raise
        raise NoDispatcherError("; ".join(failures) or "no dispatcher known")

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
