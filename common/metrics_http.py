"""/metrics in the Prometheus text format, served by a small aiohttp app.

Each service keeps its metrics in its own CollectorRegistry (never the
process-wide default), so several services can run in one process (the
embedded trio, tests) without their series mixing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

log = logging.getLogger(__name__)

RefreshFn = Callable[[], Awaitable[None]]


def body_handler(body: Callable[[], Awaitable[bytes]]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler for /metrics serving what `body` renders."""

    async def handle(_: web.Request) -> web.Response:
        # The classic text format: what generate_latest writes, and what
        # every Prometheus (Debian 12 ships 2.42) reads.
        return web.Response(body=await body(), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    return handle


def metrics_handler(
    registry: CollectorRegistry, refresh: RefreshFn | None = None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler for /metrics; `refresh` (optional) updates the
    values that must be fetched asynchronously (e.g. from a journal) first."""

    async def render() -> bytes:
        if refresh is not None:
            try:
                await refresh()
            except Exception as exc:  # noqa: BLE001 - a failed refresh serves the last values, never a 500
                log.warning("metrics refresh failed, serving the previous values: %r", exc)
        return generate_latest(registry)

    return body_handler(render)


class MetricsServer:
    """Serves `registry` at http://`listen`/metrics until stop(); `setting`
    names the conf key `listen` came from, for the error when it is taken."""

    def __init__(self, listen: str, registry: CollectorRegistry, refresh: RefreshFn | None = None, *, setting: str) -> None:
        self.listen = listen
        self.setting = setting
        app = web.Application()
        app.router.add_get("/metrics", metrics_handler(registry, refresh))
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        host, _, port = self.listen.rpartition(":")
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host.strip("[]"), int(port)).start()
        except OSError as exc:
            await self._runner.cleanup()
            # The services' __main__ turn an OSError into one "cannot start" line.
            raise OSError(f"{self.setting}: cannot listen on {self.listen} (address in use?): {exc.strerror or exc}") from exc
        log.info("metrics on http://%s/metrics", self.listen)

    async def stop(self) -> None:
        await self._runner.cleanup()
