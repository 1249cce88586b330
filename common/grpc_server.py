"""gRPC servers shared by the three services: health and reflection (channels: grpc_channel.py)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    # Two services must never share a port by accident (SO_REUSEPORT is on by default).
    ("grpc.so_reuseport", 0),
    # gRPC's core cancels calls that queue before the event loop takes them
    # (defaults 1,000 / 3,000): an executor handed a burst of thousands of
    # runs would cancel some that the dispatcher then counts as failed.
    ("grpc.server.max_pending_requests", 100_000),
    ("grpc.server.max_pending_requests_hard_limit", 100_000),
]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ServiceServer:
    """A grpc.aio server with grpc.health.v1 and reflection registered.

    The one place servers are built. `credentials` (see common.tls) serves
    TLS instead of plaintext; `interceptors` (see common.auth) run before
    every call, health and reflection included (they decide what stays open).
    """

    def __init__(
        self,
        listen: str,
        service_names: list[str],
        *,
        credentials: grpc.ServerCredentials | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        self.server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=list(interceptors) or None)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.service_names = list(service_names)
        reflection.enable_server_reflection([*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server)
        self.listen = listen
        self.credentials = credentials
        self.port = 0

    async def start(self) -> None:
        try:
            if self.credentials is not None:
                self.port = self.server.add_secure_port(self.listen, self.credentials)
            else:
                self.port = self.server.add_insecure_port(self.listen)
        except RuntimeError as exc:  # grpc >= 1.60 raises instead of returning port 0
            raise OSError(f"cannot listen on {self.listen} (address in use?): {exc}") from exc
        if self.port == 0:
            raise OSError(f"cannot listen on {self.listen} (address in use?)")
        await self.server.start()
        await self.set_serving(True)

    async def set_serving(self, serving: bool) -> None:
        status = SERVING if serving else NOT_SERVING
        for name in ["", *self.service_names]:
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        await self.server.stop(grace)
