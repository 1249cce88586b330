"""The monitor's HTTP port: /healthz for probes, /status as JSON, /metrics
for Prometheus (monitor/metrics.py), and the web console (console/) mounted beside them when [console] enabled.

/healthz is also what the example HTTP job calls, so a fresh `make run`
shows an HTTP task doing real work against a local URL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from crontrio.common.config import Config
from crontrio.common.metrics_http import body_handler
from crontrio.monitor.metrics import MonitorMetrics


class StatusHttpServer:
    def __init__(self, cfg: Config, status: Callable[[], dict[str, Any]], metrics: MonitorMetrics | None = None) -> None:
        self._listen = cfg.monitor.http_listen
        snapshot = status

        async def healthz(_: web.Request) -> web.Response:
            return _json(200, {"status": "ok"})

        async def status_page(_: web.Request) -> web.Response:
            return _json(200, snapshot())

        if cfg.console.enabled:
            from crontrio.console.app import build_app  # the console is mounted, nothing more

            self._app = build_app(cfg)
        else:
            self._app = web.Application()

            async def not_found(request: web.Request) -> web.Response:
                return _json(404, {"error": f"no such path {request.path}; try /healthz, /status or /metrics"})

            self._app.router.add_get("/", not_found)
        self._app.router.add_get("/healthz", healthz)
        self._app.router.add_get("/status", status_page)
        if metrics is not None:
            self._app.router.add_get("/metrics", body_handler(metrics.exposition))
        self._runner = web.AppRunner(self._app, access_log=None)

    async def start(self) -> None:
        host, _, port = self._listen.rpartition(":")
        await self._runner.setup()
        await web.TCPSite(self._runner, host.strip("[]"), int(port)).start()

    async def stop(self) -> None:
        await self._runner.cleanup()


def _json(code: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=code, text=json.dumps(body, indent=2) + "\n", content_type="application/json")
