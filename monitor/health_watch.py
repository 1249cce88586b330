"""Checks executors over grpc.health.v1 and logs when one goes down or comes back."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.grpc_server import insecure_channel

log = logging.getLogger(__name__)
CHECK_TIMEOUT_SECONDS = 1.5


@dataclass
class HealthState:
    address: str
    healthy: bool | None = None  # None = not checked yet
    detail: str = ""
    since_ms: int = 0
    checked_ms: int = 0


class HealthWatch:
    def __init__(self, executors: list[str], interval_seconds: float) -> None:
        self._interval = interval_seconds
        self._stubs = {a: health_pb2_grpc.HealthStub(insecure_channel(a)) for a in executors}
        self.states = {a: HealthState(a) for a in executors}

    async def check(self, address: str) -> None:
        state = self.states[address]
        try:
            reply = await self._stubs[address].Check(health_pb2.HealthCheckRequest(service=""), timeout=CHECK_TIMEOUT_SECONDS)
            healthy = reply.status == health_pb2.HealthCheckResponse.SERVING
            detail = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.aio.AioRpcError as exc:
            healthy, detail = False, f"{exc.code().name}: {exc.details()}"
        now = time.time_ns() // 1_000_000
        if healthy != state.healthy:
            if healthy:
                log.info("executor %s is UP", address)
            elif state.healthy is None:
                log.warning("executor %s is DOWN at start: %s", address, detail)
            else:
                log.warning("executor %s went DOWN: %s", address, detail)
            state.since_ms = now
        state.healthy, state.detail, state.checked_ms = healthy, detail, now

    async def run(self) -> None:
        while True:
            await asyncio.gather(*(self.check(a) for a in self.states))
            await asyncio.sleep(self._interval)
