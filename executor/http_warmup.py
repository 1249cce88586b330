"""Connections for HTTP runs sent ahead, opened before their instant.

A burst of HTTP jobs due at one second (``*/5 * * * *`` against a few
services) finds the connection pool cold: its connections outlived their
keep-alive since the last burst. Opened at the instant, every one of them
(the socket, the TCP handshake, TLS when the URL is https) costs the
executor's CPU right when the runs should start, one after another. The
runs of an instant are known here as soon as they arrive, held for it
(executor/held_runs.py), so their connections are opened then: as many as
the runs to each origin at that instant, up to the pool's limit, released
into the pool, where the runs' requests find them at the instant.

Only a connection is made ahead, never a request: a server sees the
request at the scheduled time, as without this. A connection that cannot
be made now is left to the run, which meets the same error and reports it.
Requests through a proxy are not warmed (their connections go to the
proxy, which may hold the origin's own). A warm-up takes only connections
free at the time, and gives up on the ones not made by shortly before the
instant, so a run's own request does not wait behind it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from aiohttp.client_reqrep import ClientRequest
from yarl import URL

from crontrio.common.clock import now_ms
from crontrio.protos import crontrio_pb2

if TYPE_CHECKING:  # it owns a warmer: imported at run time, this module would import it back
    from crontrio.executor.http_task import HttpClients

log = logging.getLogger(__name__)

# Connections are opened only for an instant at least this far off, and
# those not made by then are given up: a run's own request must never wait
# for a warm-up holding a connection of the pool.
MARGIN_MS = 100
# Bounds one connection's handshake (a host that does not answer).
CONNECT_TIMEOUT_SECONDS = 5.0


@dataclass
class _Origin:
    """One pool key's demand: runs per instant, and how many connections
    have been made ready for each instant already."""

    url: URL
    ssl: ssl.SSLContext | bool
    runs: dict[int, int] = field(default_factory=dict)
    warmed: dict[int, int] = field(default_factory=dict)
    busy: bool = False


class ConnectionWarmer:
    """Counts the held HTTP runs per origin and instant (``expect``) and,
    once per event loop pass, makes sure the pool has a connection for each
    of them (up to its limit) before their instant."""

    def __init__(self, clients: HttpClients, clock: Callable[[], int] = now_ms) -> None:
        self._clients = clients
        self._clock = clock
        self._origins: dict[tuple[str, str, int, int], _Origin] = {}
        self._flush_soon = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Told each warm-up's connections made ready and not (the executor's metrics).
        self.report: Callable[[int, int], None] = lambda ready, failed: None

    def expect(self, task: crontrio_pb2.HttpTask, instant_ms: int) -> None:
        """A run of ``task`` is held for ``instant_ms``."""
        if self._clients.proxy_for(task.url) is not None:
            return
        url = self._clients.url(task.url)
        if not isinstance(url, URL) or url.scheme not in ("http", "https") or not url.host or url.port is None:
            return
        # As run_http passes it: aiohttp pools by host, port and TLS settings.
        tls = self._clients.ssl_for(task)
        key = (url.scheme, url.host, url.port, id(tls))
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(url.origin(), tls)
        origin.runs[instant_ms] = origin.runs.get(instant_ms, 0) + 1
        if not self._flush_soon:
            # A batch of runs arrives in one loop pass: count them all first.
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        now = self._clock()
        limit = self._clients.max_connections or None
        for key, origin in list(self._origins.items()):
            for instant in [i for i in origin.runs if i - now < MARGIN_MS]:
                origin.runs.pop(instant)  # due, or nearly: its runs connect themselves
                origin.warmed.pop(instant, None)
            if not origin.runs and not origin.busy:
                del self._origins[key]
                continue
            if origin.busy:
                continue  # one warm-up per origin at a time: two would open a connection each for the same runs
            short = {i: min(n, limit) if limit else n for i, n in origin.runs.items()}
            short = {i: want for i, want in short.items() if want > origin.warmed.get(i, 0)}
            if not short:
                continue
            # The instants share the pool: connections made for the
            # largest are there for the others too (reused, not reopened).
            want = max(short.values())
            origin.warmed.update(short)
            origin.busy = True
            task = asyncio.create_task(self._warm(origin, want, min(short)), name=f"warm {origin.url}")
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._warmed, origin))

    def _warmed(self, origin: _Origin, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        origin.busy = False
        if not task.cancelled() and not self._flush_soon:
            # Runs that arrived meanwhile may want more.
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def _warm(self, origin: _Origin, want: int, instant_ms: int) -> None:
        """Hold ``want`` connections to ``origin`` at once (idle ones from the
        pool, new ones for the rest), then give them all back to the pool."""
        left_s = (instant_ms - MARGIN_MS - self._clock()) / 1000
        if left_s <= 0:
            return
        try:
            session = self._clients.session()
        except RuntimeError:  # closed: the executor is stopping
            return
        connector = session.connector
        if connector is None:
            return
        if self._clients.max_connections:
            # Only connections free now: a warm-up waiting for one would be
            # handed the next a run gives back, ahead of runs waiting for it.
            want = min(want, self._clients.max_connections - self._clients.requests_going)
            if want <= 0:
                return
        loop = asyncio.get_running_loop()
        request = ClientRequest("GET", origin.url, loop=loop, ssl=origin.ssl, session=session)
        timeout = aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT_SECONDS)
        held: list[aiohttp.connector.Connection] = []

        async def one() -> None:
            held.append(await connector.connect(request, [], timeout))

        try:
            async with asyncio.timeout(left_s):
                results = await asyncio.gather(*(one() for _ in range(want)), return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                log.debug("warming %d connections to %s: %d failed (%r)", want, origin.url, len(failed), failed[0])
        except TimeoutError:
            log.debug("warming %d connections to %s: %d ready at the deadline", want, origin.url, len(held))
        finally:
            for connection in held:
                connection.release()
            self.report(len(held), want - len(held))

    @property
    def idle(self) -> bool:
        """Nothing asked for is left to do: no warm-up going on, none about
        to start (runs counted this loop pass start theirs on the next)."""
        return not self._flush_soon and not self._tasks

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
