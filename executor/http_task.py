"""Runs one HTTP task: a single request through the executor's shared aiohttp session."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import ssl
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import certifi
from yarl import URL

from crontrio.executor.http_warmup import ConnectionWarmer
from crontrio.protos import crontrio_pb2

log = logging.getLogger(__name__)

# An HTTP task with no timeout of its own still must not hang forever.
DEFAULT_TIMEOUT_SECONDS = 60.0
METHODS = ("GET", "POST")

# Connections open at once, all hosts together and to any one host alike
# ([executor] http_max_connections; aiohttp's default is 100 in all). Beyond
# it a run's request waits for a connection. Opened at the instant, a new
# connection (its socket and the kernel's handshake) costs more than a wait
# of a few ms (2,000 requests from a fresh pool took 0.26 ms of client CPU
# each with no limit, 0.13 with 500), which kept this at 500; since the
# connections of runs sent ahead are opened before their instant
# (executor/http_warmup.py), a bigger pool sends a burst at once: 10,000
# jobs due at one second on 2 executors, max lag 0.93-0.96 s with 1,000 and
# 0.71-0.75 s with 2,500, against 1.01-1.03 s with 500 (bench/RESULTS.md).
# Each connection is a file descriptor, so the pool never takes more than
# half of the process's limit on them (the rest: the journal, gRPC, pipes).
MAX_CONNECTIONS = 2500
# Keep as many connections alive as may be open: with a small idle pool (httpx
# kept 20), a burst of every-second jobs against one host reconnected ~all of
# them every second (TCP and TLS setup per run). 30 s outlives the gap between
# bursts of every-second to every-few-seconds jobs.
KEEPALIVE_SECONDS = 30.0
# Parsed task URLs kept (every-second jobs send the same few thousand URLs
# over and over; parsing one is a few percent of a request's CPU).
URL_CACHE_SIZE = 10_000
# httpx followed up to 20 redirects (aiohttp's own default is 10).
MAX_REDIRECTS = 20
# httpx (h11) accepted a response head of up to 16 KiB; aiohttp's default
# limit of 8 KiB per header line would fail responses (big cookies) that worked.
MAX_HEADER_LINE_BYTES = 16 * 1024
# aiohttp labels a bytes body application/octet-stream; httpx sent none, and
# a task that wants one sets it in its headers (skipping only affects defaults).
_SKIP_AUTO_HEADERS = frozenset({"Content-Type"})


@dataclass(frozen=True)
class HttpResult:
    """How one HTTP task ended."""

    status_code: int = 0  # 0 when no response arrived
    succeeded: bool = False
    timed_out: bool = False
    error: str = ""


def is_expected(status_code: int, expected: list[int]) -> bool:
    """Success is one of ``expected``, or any 2xx when that is empty."""
    return status_code in expected if expected else 200 <= status_code < 300


def _verifying_context() -> ssl.SSLContext:
    # The CAs httpx trusted, so that the change of client changes no verdict:
    # SSL_CERT_FILE or SSL_CERT_DIR when set, else certifi's bundle.
    if cafile := os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=cafile)
    if capath := os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=capath)
    return ssl.create_default_context(cafile=certifi.where())


class _EnvProxies:
    """HTTP_PROXY / HTTPS_PROXY / ALL_PROXY and NO_PROXY, read once as httpx
    did. Not aiohttp's trust_env: that re-reads them (and ~/.netrc, adding
    Authorization headers httpx never sent) in a thread on every request."""

    def __init__(self) -> None:
        env = urllib.request.getproxies_environment()
        self.by_scheme: dict[str, str] = {}
        for scheme in ("http", "https"):
            proxy = env.get(scheme) or env.get("all")
            if proxy:
                self.by_scheme[scheme] = proxy if "://" in proxy else f"http://{proxy}"

    def for_url(self, url: str) -> str | None:
        if not self.by_scheme:  # the usual case: no proxy, no parsing
            return None
        parts = urlsplit(url)
        proxy = self.by_scheme.get(parts.scheme)
        host = parts.netloc.rpartition("@")[2]  # host[:port], without credentials
        # NO_PROXY, re-read: only ever done when a proxy is configured.
        if proxy is None or urllib.request.proxy_bypass(host):
            return None
        return proxy


class HttpClients:
    """The connection pool every HTTP task shares: one aiohttp session, made
    on first use because aiohttp binds it to the running event loop. Tasks
    with ``skip_tls_verify`` pass ``ssl=False`` per request; aiohttp keys
    pooled connections by their TLS settings too, so a connection opened
    without verification never serves a verifying task. Closed (aclose) at
    the executor's shutdown."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS) -> None:
        self.max_connections = pool_size(max_connections)
        self._verify = _verifying_context()
        self._proxies = _EnvProxies()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._urls: dict[str, URL] = {}
        # Runs' requests under way (each holds a connection of the pool, or waits for one).
        self.requests_going = 0
        # Opens the connections of runs held for an instant ahead of it.
        self.warmer = ConnectionWarmer(self)

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self._closed:
                raise RuntimeError("the HTTP clients are closed")
            self._session = _make_session(self.max_connections)
        return self._session

    def url(self, raw: str) -> URL | str:
        """``raw`` parsed, as aiohttp would parse it, from a bounded cache; a
        URL that does not parse is left to aiohttp, to fail as it does."""
        url = self._urls.get(raw)
        if url is None:
            try:
                url = URL(raw)
            except ValueError:
                return raw
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[raw] = url
        return url

    def ssl_for(self, task: crontrio_pb2.HttpTask) -> ssl.SSLContext | bool:
        return False if task.skip_tls_verify else self._verify

    def proxy_for(self, url: str) -> str | None:
        return self._proxies.for_url(url)

    async def aclose(self) -> None:
        self._closed = True
        await self.warmer.aclose()
        if self._session is not None:
            await self._session.close()


def pool_size(wanted: int, open_files: int | None = None) -> int:
    """The connection limit for ``wanted`` (0 = as many as may be open): at
    most half the soft limit on open files (``open_files``, default the
    process's), so that a burst queues for a connection rather than fails
    for want of a file descriptor."""
    if open_files is None:
        open_files, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = max(open_files // 2, 1) if open_files != resource.RLIM_INFINITY and open_files > 0 else 0
    if cap and (wanted <= 0 or wanted > cap):
        log.info("HTTP tasks: at most %d connections at once (half the open files limit %d)", cap, open_files)
        return cap
    return max(wanted, 0)


def _make_session(max_connections: int) -> aiohttp.ClientSession:
    # limit_per_host as the total: one host may take the whole pool (a
    # burst against one service is the usual case).
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=max_connections, keepalive_timeout=KEEPALIVE_SECONDS)
    return aiohttp.ClientSession(
        connector=connector,
        # No aiohttp timeouts (its default total is 300 s): run_http bounds
        # the whole exchange itself, with one timer.
        timeout=aiohttp.ClientTimeout(),
        # No cookie jar: the session is shared by every job's runs, and
        # aiohttp's default jar would send a cookie one job's server set
        # (a session token, say) with another job's request to that host.
        # Like curl without -b, a run sends only the headers its task has.
        # (Filtering the jar was also a few percent of a request's CPU.)
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=_SKIP_AUTO_HEADERS,  # per session: per request it costs a set build each
        max_line_size=MAX_HEADER_LINE_BYTES,
        max_field_size=MAX_HEADER_LINE_BYTES,
    )


async def run_http(
    clients: HttpClients,
    task: crontrio_pb2.HttpTask,
    *,
    timeout_seconds: float,
    on_head: Callable[[bytes], None],
    on_body: Callable[[bytes], None],
) -> HttpResult:
    """Send the request; report ``HTTP <status> <reason>`` lines (one per
    redirect followed, then the final response's) to ``on_head``, then stream
    the final response's body to ``on_body``. ``timeout_seconds`` (> 0)
    bounds the whole exchange, redirects included, not just each network
    operation, so a server trickling bytes cannot stretch it."""
    method = (task.method or "GET").upper()
    timeout = timeout_seconds
    status_code = 0
    clients.requests_going += 1
    try:
        async with asyncio.timeout(timeout):
            # Redirects are not followed unless a task asks: like curl, a 3xx
            # is the answer, and a job that wants it to count as success
            # lists it in expected_statuses.
            async with clients.session().request(
                method,
                clients.url(task.url),
                headers=dict(task.headers),
                data=task.body.encode() if task.body else None,
                allow_redirects=task.follow_redirects,
                max_redirects=MAX_REDIRECTS,
                ssl=clients.ssl_for(task),
                proxy=clients.proxy_for(task.url),
            ) as response:
                status_code = response.status
                head = "".join(
                    f"HTTP {hop.status} {hop.reason or ''} -> {hop.headers.get('Location', '')}\n" for hop in response.history
                )
                on_head(f"{head}HTTP {response.status} {response.reason or ''}\n".encode())
                async for chunk in response.content.iter_any():
                    on_body(chunk)
    except TimeoutError:
        return HttpResult(status_code=status_code, timed_out=True, error=f"timed out after {timeout:g}s")
    except aiohttp.ClientConnectorError as exc:  # TLS failures included: they happen while connecting
        return HttpResult(error=_connect_error(task.url, exc.os_error))
    except aiohttp.ClientError as exc:
        return HttpResult(status_code=status_code, error=f"{type(exc).__name__}: {exc}")
    finally:
        clients.requests_going -= 1
    expected = list(task.expected_statuses)
    if is_expected(status_code, expected):
        return HttpResult(status_code=status_code, succeeded=True)
    wanted = ", ".join(map(str, expected)) if expected else "2xx"
    return HttpResult(status_code=status_code, error=f"HTTP status {status_code}, expected {wanted}")


def _connect_error(url: str, cause: OSError) -> str:
    """What a failed connection says, from the socket or TLS error under it."""
    if isinstance(cause, ConnectionRefusedError):
        return f"connection refused: {url}"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed for {url}: {cause.verify_message or cause.reason or cause}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS error connecting to {url}: {cause.reason or cause}"
    return f"cannot connect to {url}: {cause}"
