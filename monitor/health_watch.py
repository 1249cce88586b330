"""Checks executors over grpc.health.v1, logs when one goes down or comes back,
and tells every dispatcher which ones to keep out of routing."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crontrio.common.alerts.message import system_alert
from crontrio.common.alerts.sender import AlertSender
from crontrio.common.clock import now_ms
from crontrio.common.config import TlsConfig
from crontrio.common.grpc_channel import make_channel
from crontrio.common.registry.base import Registry
from crontrio.common.tls import load_tls
from crontrio.monitor.dispatcher_links import DispatcherLinks
from crontrio.protos import crontrio_pb2 as pb

log = logging.getLogger(__name__)
CHECK_TIMEOUT_SECONDS = 1.5


@dataclass
class HealthState:
    address: str
    healthy: bool | None = None  # None = not checked yet
    detail: str = ""
    since_ms: int = 0
    checked_ms: int = 0
    last_ok_ms: int = 0  # when it last passed a check (0 = never)


class HealthWatch:
    def __init__(
        self, registry: Registry, links: DispatcherLinks, interval_seconds: float, *, tls: TlsConfig | None = None
    ) -> None:
        """`tls` set ([tls] internal = true): executors are checked over mutual TLS."""
        self._tls = tls
        if tls is not None:
            load_tls(tls)  # a bad [tls] file stops the monitor at start
        self._registry = registry
        self._links = links
        self._interval = interval_seconds
        self.alerts: AlertSender | None = None  # executor down/up alerts, when set
        self._stubs: dict[str, health_pb2_grpc.HealthStub] = {}
        self.states: dict[str, HealthState] = {}

    def unhealthy(self) -> set[str]:
        return {a for a, s in self.states.items() if s.healthy is False}

    async def check(self, address: str) -> None:
        state = self.states.setdefault(address, HealthState(address))
        stub = self._stubs.get(address)
        if stub is None:
            channel = make_channel(address, self._tls, client_cert=True)
            stub = self._stubs[address] = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=CHECK_TIMEOUT_SECONDS)
            healthy = reply.status == health_pb2.HealthCheckResponse.SERVING
            detail = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.aio.AioRpcError as exc:
            healthy, detail = False, f"{exc.code().name}: {exc.details()}"
        now = now_ms()
        if healthy != state.healthy:
            if healthy:
                log.info("executor %s is UP", address)
                if state.healthy is False and self.alerts is not None:
                    self.alerts.submit_system(
                        system_alert(
                            f"executor-up:{address}",
                            f"executor {address} is up again",
                            f"Executor {address} answers its health checks again.",
                            "info",
                        )
                    )
            elif state.healthy is None:
                log.warning("executor %s is DOWN at start: %s", address, detail)
            else:
                log.warning("executor %s went DOWN: %s", address, detail)
            if not healthy and self.alerts is not None:
                self.alerts.submit_system(
                    system_alert(
                        f"executor-down:{address}",
                        f"executor {address} is down",
                        f"Executor {address} fails its health checks: {detail}. It is out of routing until it recovers.",
                        "error",
                    )
                )
            state.since_ms = now
        state.healthy, state.detail, state.checked_ms = healthy, detail, now
        if healthy:
            state.last_ok_ms = now

    async def _report(self, address: str, unhealthy: list[str]) -> None:
        seen = {a: s.last_ok_ms for a, s in self.states.items() if s.last_ok_ms}
        report = pb.ExecutorHealthReport(unhealthy=unhealthy, last_seen_ms=seen)
        try:
            ack = await self._links.stub(address).ReportExecutorHealth(report, timeout=3)
        except grpc.aio.AioRpcError as exc:
            log.debug("health report to dispatcher %s failed: %s", address, exc.details())
            return
        self._links.answered(address, ack.dispatcher)  # doubles as the dispatcher's heartbeat

    async def run(self) -> None:
        while True:
            addresses = {e.address for e in self._registry.live()}
            for gone in set(self.states) - addresses:
                log.info("executor %s left the registry", gone)
                del self.states[gone]
            await asyncio.gather(*(self.check(a) for a in addresses))
            # A full snapshot every round: a dispatcher that just started, or
            # missed a report, is corrected within one interval.
            unhealthy = sorted(self.unhealthy())
            await asyncio.gather(*(self._report(a, unhealthy) for a in self._links.addresses()))
            await asyncio.sleep(self._interval)
