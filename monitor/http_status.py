"""A small HTTP status endpoint: /healthz for probes, /status as JSON.

It is also what the example HTTP job calls, so a fresh `make run` shows an
HTTP task doing real work against a local URL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StatusHttpServer:
    def __init__(self, listen: str, status: Callable[[], dict[str, Any]]) -> None:
        host, _, port = listen.rpartition(":")
        snapshot = status

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._send(200, {"status": "ok"})
                elif self.path == "/status":
                    self._send(200, snapshot())
                else:
                    self._send(404, {"error": f"no such path {self.path}; try /healthz or /status"})

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body, indent=2).encode() + b"\n"
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence per-request stderr lines
                return

        self._server = ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="status-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
