"""executor.http_task in-process against real local HTTP(S) servers: what the
request looks like on the wire, redirects, the connection pool (kept alive,
not capped low, never mixing verifying and non-verifying TLS), the
whole-exchange timeout, error texts and proxies from the environment."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from crontrio.common.clock import now_ms
from crontrio.executor.http_task import HttpClients, HttpResult, run_http
from crontrio.protos import crontrio_pb2 as pb
from testing_support.services import wait_until

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
# Runs in flight at once to one host: more than aiohttp's default pool (100).
CONCURRENT = 200


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, so that connection reuse can be seen."""

    protocol_version = "HTTP/1.1"
    barrier: threading.Barrier  # set on the class by the fixture
    stopping: threading.Event  # likewise: set when the server goes down

    def do_GET(self) -> None:
        self._route(b"")

    def do_POST(self) -> None:
        self._route(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def _route(self, body: bytes) -> None:
        path = self.path
        if path.startswith("http://"):  # absolute form: we are being used as a proxy
            auth = self.headers.get("Proxy-Authorization", "")
            self._reply(200, f"proxied {path} {auth}".encode())
        elif path == "/ok":
            self._reply(200, b"hello\n")
        elif path == "/headers":
            seen = {"method": self.command, "headers": {k.lower(): v for k, v in self.headers.items()}}
            self._reply(200, json.dumps({**seen, "body": body.decode()}).encode())
        elif path == "/port":
            self._reply(200, str(self.client_address[1]).encode())
        elif path.startswith("/hop/"):
            left = int(path.rsplit("/", 1)[1])
            if left == 0:
                self._reply(200, b"arrived\n")
            else:
                self._reply(302 if left % 2 == 0 else 301, b"moved\n", Location=f"/hop/{left - 1}")
        elif path == "/set-cookie":
            self._reply(200, b"set\n", **{"Set-Cookie": "session=job-a-secret; Path=/"})
        elif path == "/see-other":
            self._reply(303, b"", Location="/headers")
        elif path == "/loop":
            self._reply(302, b"", Location="/loop")
        elif path == "/barrier":
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                self._reply(500, b"not enough requests in flight at once\n")
            else:
                self._reply(200, b"together\n")
        elif path == "/trickle":
            self._trickle()
        else:
            self._reply(404, b"no such path\n")

    def _trickle(self) -> None:
        """A 200 whose body comes a byte at a time: every read is quick, the
        whole body takes ~10 s, or ends with the server."""
        try:
            self.send_response(200)
            self.send_header("Content-Length", "200")
            self.end_headers()
            for _ in range(200):
                self.wfile.write(b"x")
                self.wfile.flush()
                if self.stopping.wait(0.05):  # the pace of a slow server, until it goes down
                    return
        except OSError:
            pass  # the client gave up: what the test wants

    def _reply(self, code: int, body: bytes, **headers: str) -> None:
        try:
            self.send_response(code)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2 * CONCURRENT  # every run connects at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # refused handshakes and abandoned responses are expected


def _serve(context: ssl.SSLContext | None = None) -> Iterator[str]:
    barrier = threading.Barrier(CONCURRENT, timeout=20)
    stopping = threading.Event()
    server = _Server(("127.0.0.1", 0), type("Handler", (_Handler,), {"barrier": barrier, "stopping": stopping}))
    scheme = "http"
    if context is not None:
        # The handshake happens on the first read, in the request's thread.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    barrier.abort()
    stopping.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    yield from _serve()


@pytest.fixture(scope="module")
def https_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Keep-alive HTTPS with a self-signed certificate made for the test."""
    directory: Path = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    key_options = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key)]
    cert_options = ["-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(["openssl", "req", "-x509", *key_options, *cert_options], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    yield from _serve(context)


def _no_env_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest_asyncio.fixture
async def clients(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[HttpClients]:
    _no_env_proxies(monkeypatch)  # every server here is local
    shared = HttpClients()
    yield shared
    await shared.aclose()


async def fetch(clients: HttpClients, url: str, *, timeout: float = 30, **fields: Any) -> tuple[HttpResult, bytes]:
    """One HTTP task; its result and its output (head lines, then body)."""
    output = bytearray()
    task = pb.HttpTask(url=url, **fields)
    result = await run_http(clients, task, timeout_seconds=timeout, on_head=output.extend, on_body=output.extend)
    return result, bytes(output)


def echoed(output: bytes) -> dict[str, Any]:
    """What /headers saw, from a run's output."""
    seen: dict[str, Any] = json.loads(output.split(b"\n", 1)[1])
    return seen


# ---------------------------------------------------------------- the request on the wire


async def test_no_headers_beyond_what_the_task_needs(clients: HttpClients, http_base: str) -> None:
    basic = {"host", "accept", "accept-encoding", "user-agent", "x-test"}
    result, output = await fetch(clients, f"{http_base}/headers", headers={"X-Test": "yes"})
    assert result.succeeded and output.startswith(b"HTTP 200 OK\n"), (result, output)
    seen = echoed(output)
    assert seen["method"] == "GET" and set(seen["headers"]) <= basic | {"connection"}, seen
    # A body is sent as is: its length, no made-up Content-Type.
    result, output = await fetch(clients, f"{http_base}/headers", method="POST", body="payload", headers={"X-Test": "yes"})
    seen = echoed(output)
    assert seen["method"] == "POST" and seen["body"] == "payload", seen
    assert seen["headers"]["content-length"] == "7" and "content-type" not in seen["headers"], seen
    assert set(seen["headers"]) <= basic | {"connection", "content-length"}, seen
    # The task's own Content-Type is kept.
    result, output = await fetch(
        clients, f"{http_base}/headers", method="POST", body="{}", headers={"Content-Type": "application/json"}
    )
    assert echoed(output)["headers"]["content-type"] == "application/json"


async def test_a_cookie_one_run_was_given_never_reaches_another_run(clients: HttpClients, http_base: str) -> None:
    # Runs of different jobs share the connection pool, never state: a
    # session cookie job A's server set must not be sent with job B's request.
    # By name: aiohttp's cookie jar keeps no cookie of a host given as an IP.
    named = http_base.replace("127.0.0.1", "localhost")
    result, _ = await fetch(clients, f"{named}/set-cookie")
    assert result.succeeded, result
    result, output = await fetch(clients, f"{named}/headers")
    assert result.succeeded, result
    assert "cookie" not in echoed(output)["headers"], echoed(output)


# ---------------------------------------------------------------- redirects


async def test_redirect_chain_reports_every_hop(clients: HttpClients, http_base: str) -> None:
    result, output = await fetch(clients, f"{http_base}/hop/2")
    assert not result.succeeded and result.status_code == 302
    assert result.error == "HTTP status 302, expected 2xx" and output == b"HTTP 302 Found\nmoved\n"
    result, output = await fetch(clients, f"{http_base}/hop/2", follow_redirects=True)
    assert result == HttpResult(status_code=200, succeeded=True)
    assert output == b"HTTP 302 Found -> /hop/1\nHTTP 301 Moved Permanently -> /hop/0\nHTTP 200 OK\narrived\n"


async def test_see_other_after_post_is_a_get_without_the_body(clients: HttpClients, http_base: str) -> None:
    result, output = await fetch(clients, f"{http_base}/see-other", method="POST", body="once", follow_redirects=True)
    assert result.succeeded, result
    head, _, _ = output.partition(b"{")
    assert head == b"HTTP 303 See Other -> /headers\nHTTP 200 OK\n"
    seen = echoed(output.split(b"\n", 1)[1])
    assert seen["method"] == "GET" and seen["body"] == "", seen


async def test_redirect_loop_ends_in_an_error(clients: HttpClients, http_base: str) -> None:
    result, _ = await fetch(clients, f"{http_base}/loop", follow_redirects=True)
    assert not result.succeeded and not result.timed_out
    assert result.error.startswith("TooManyRedirects: "), result


# ---------------------------------------------------------------- the pool


async def test_connection_is_kept_alive_between_runs(clients: HttpClients, http_base: str) -> None:
    ports = set()
    for _ in range(3):
        result, output = await fetch(clients, f"{http_base}/port")
        assert result.succeeded, result
        ports.add(output.split(b"\n", 1)[1])
    assert len(ports) == 1, f"each run opened its own connection: client ports {sorted(ports)}"


async def test_hundreds_of_runs_in_flight_at_once(clients: HttpClients, http_base: str) -> None:
    """The server answers none until CONCURRENT requests wait at once: a pool
    capped below that would leave the rest queued and the barrier broken."""
    results = await asyncio.gather(*(fetch(clients, f"{http_base}/barrier") for _ in range(CONCURRENT)))
    failed = [(result, output) for result, output in results if not result.succeeded]
    assert not failed, f"{len(failed)} of {CONCURRENT} failed, e.g. {failed[0]}"


# ---------------------------------------------------------------- TLS


async def test_self_signed_certificate_verified_per_task(clients: HttpClients, https_base: str) -> None:
    result, _ = await fetch(clients, f"{https_base}/ok")
    assert result.status_code == 0 and not result.succeeded
    assert result.error.startswith(f"TLS certificate verification failed for {https_base}/ok: "), result.error
    assert "self-signed certificate" in result.error
    # skip_tls_verify: accepted, and the connection is kept alive for the next such task ...
    ports = set()
    for _ in range(2):
        result, output = await fetch(clients, f"{https_base}/port", skip_tls_verify=True)
        assert result.succeeded, result
        ports.add(output.split(b"\n", 1)[1])
    assert len(ports) == 1, ports
    # ... but never lent to a task that verifies, even with both in flight at once.
    mixed = await asyncio.gather(*(fetch(clients, f"{https_base}/ok", skip_tls_verify=i % 2 == 0) for i in range(20)))
    for i, (result, output) in enumerate(mixed):
        if i % 2 == 0:
            assert result.succeeded and output == b"HTTP 200 OK\nhello\n", (i, result)
        else:
            assert "certificate verification failed" in result.error, (i, result)


async def test_tls_to_a_plain_http_server(clients: HttpClients, http_base: str) -> None:
    url = http_base.replace("http://", "https://") + "/ok"
    result, _ = await fetch(clients, url)
    assert result.status_code == 0 and not result.succeeded
    assert result.error.startswith(f"TLS error connecting to {url}: "), result.error


# ---------------------------------------------------------------- timeout


async def test_timeout_bounds_the_whole_exchange(clients: HttpClients, http_base: str) -> None:
    """Each byte of the body comes quickly; the whole body would take ~10 s."""
    result, output = await fetch(clients, f"{http_base}/trickle", timeout=0.5)
    assert result == HttpResult(status_code=200, timed_out=True, error="timed out after 0.5s"), result
    assert output.startswith(b"HTTP 200 OK\n") and len(output) < len(b"HTTP 200 OK\n") + 200


# ---------------------------------------------------------------- proxies


async def test_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch, http_base: str) -> None:
    """HTTP_PROXY (with credentials) is used, NO_PROXY hosts go direct."""
    _no_env_proxies(monkeypatch)
    port = http_base.rsplit(":", 1)[1]
    # The test server plays the proxy too: it answers absolute-form requests itself.
    monkeypatch.setenv("HTTP_PROXY", f"http://user:secret@127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "localhost")
    clients = HttpClients()
    try:
        result, output = await fetch(clients, f"http://127.0.0.1:{port}/ok")
        assert result.succeeded, result
        assert output == f"HTTP 200 OK\nproxied http://127.0.0.1:{port}/ok Basic dXNlcjpzZWNyZXQ=".encode()
        result, output = await fetch(clients, f"http://localhost:{port}/ok")
        assert result.succeeded and output == b"HTTP 200 OK\nhello\n", (result, output)
    finally:
        await clients.aclose()


async def test_connections_warmed_ahead_keep_their_tls_settings(clients: HttpClients, https_base: str) -> None:
    # Runs held for an instant have their connections opened ahead
    # (executor/http_warmup.py): one made without verification must never
    # serve a task that verifies, and a verifying one that fails its
    # handshake ahead is no error until the run's own request meets it.
    instant = now_ms() + 1_500
    clients.warmer.expect(pb.HttpTask(url=f"{https_base}/ok", skip_tls_verify=True), instant)
    clients.warmer.expect(pb.HttpTask(url=f"{https_base}/ok"), instant)
    await wait_until(lambda: clients.warmer.idle, 10, "the warm-ups to end")
    verified, _ = await fetch(clients, f"{https_base}/ok")
    assert "certificate verification failed" in verified.error, verified
    unverified, output = await fetch(clients, f"{https_base}/ok", skip_tls_verify=True)
    assert unverified.succeeded and output == b"HTTP 200 OK\nhello\n", unverified
