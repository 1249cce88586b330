"""A blocking gRPC client of the dispatcher's Admin service, with failover
across several --server addresses."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import grpc

from common.grpc_server import CHANNEL_OPTIONS
from protos import crontrio_pb2_grpc as pb_grpc

T = TypeVar("T")
CALL_TIMEOUT_SECONDS = 15.0


class NoServerError(Exception):
    """No dispatcher answered."""


class AdminClient:
    def __init__(self, servers: list[str]) -> None:
        self.servers = servers

    def call(self, method: Callable[[pb_grpc.AdminStub], Callable[..., T]], request: object) -> T:
        """Call on the first server that answers; a server that is down is skipped."""
        failures: list[str] = []
        for address in self.servers:
            with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
                stub = pb_grpc.AdminStub(channel)
                try:
                    return method(stub)(request, timeout=CALL_TIMEOUT_SECONDS)
                except grpc.RpcError as exc:
                    if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                        failures.append(f"{address}: {exc.details()}")
                        continue
                    raise
        raise NoServerError("; ".join(failures))
