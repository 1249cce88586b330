"""Is another dispatcher alive? Asked before taking over its unsent runs.

etcd says who is registered, but a dispatcher killed with SIGKILL stays
registered until its lease runs out (seconds). A dispatcher that is gone
refuses connections at once, so a failed health check on a fresh channel,
twice in a row, says "dead" within milliseconds. Anything else (it answers,
even NOT_SERVING while it drains its in-flight firings; or a timeout, as when
the network is slow) counts as alive: wrongly calling a live dispatcher dead
could run its firing twice, wrongly calling a dead one alive only leaves its
runs to the monitor's slower reconciliation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crontrio.common.config import TlsConfig
from crontrio.common.grpc_channel import make_channel

log = logging.getLogger(__name__)
PROBE_TIMEOUT_SECONDS = 1.0
# The second look, so that one refused connection (a restart of the network
# stack, a full accept queue) is not taken for a death.
SECOND_PROBE_AFTER_SECONDS = 0.1
# How long an answer is reused: a takeover pass asks about the same owner
# for many runs.
ANSWER_TTL_SECONDS = 1.0


class PeerLiveness:
    """`registered()` gives {dispatcher id: address} (from etcd), or None
    where there is no such registry: then every peer counts as alive."""

    def __init__(self, registered: Callable[[], dict[str, str] | None], tls: TlsConfig | None = None) -> None:
        self._registered = registered
        self._tls = tls
        self._answers: dict[str, tuple[float, bool]] = {}

    async def alive(self, dispatcher_id: str) -> bool:
        cached = self._answers.get(dispatcher_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < ANSWER_TTL_SECONDS:
            return cached[1]
        answer = await self._ask(dispatcher_id)
        self._answers[dispatcher_id] = (time.monotonic(), answer)
        if len(self._answers) > 1000:  # ids are per boot: forget old ones
            self._answers = {k: v for k, v in self._answers.items() if now - v[0] < ANSWER_TTL_SECONDS}
        return answer

    async def _ask(self, dispatcher_id: str) -> bool:
        registered = self._registered()
        if registered is None:
            return True
        address = registered.get(dispatcher_id)
        if address is None:
            log.info("dispatcher %s is no longer registered", dispatcher_id)
            return False
        for attempt in range(2):
            if await self._answers_health_check(address):
                return True
            if attempt == 0:
                await asyncio.sleep(SECOND_PROBE_AFTER_SECONDS)
        log.warning("dispatcher %s at %s refuses connections: taking it for dead", dispatcher_id, address)
        return False

    async def _answers_health_check(self, address: str) -> bool:
        # A fresh channel each time: a cached one in reconnect backoff would
        # fail fast for a dispatcher that is up again.
        channel = make_channel(address, self._tls, client_cert=True)
        try:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=PROBE_TIMEOUT_SECONDS)
            return True
        except grpc.aio.AioRpcError as exc:
            return exc.code() != grpc.StatusCode.UNAVAILABLE
        finally:
            await channel.close()
