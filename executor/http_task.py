"""Runs one HTTP task: a single request through one of the executor's shared clients."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from protos import crontrio_pb2

log = logging.getLogger(__name__)

# An HTTP task with no timeout of its own still must not hang forever.
DEFAULT_TIMEOUT_SECONDS = 60.0
METHODS = ("GET", "POST")


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


def _make_client(*, verify: bool) -> httpx.AsyncClient:
    # Redirects are not followed unless a task asks (per request): like curl,
    # a 3xx is the answer, and a job that wants it to count as success lists
    # it in expected_statuses.
    # Keep as many connections alive as may be open: with httpx's default of
    # 20, a burst of every-second jobs against one host reconnected ~all of
    # them every second (TCP and TLS setup per run).
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=500, keepalive_expiry=30)
    return httpx.AsyncClient(verify=verify, follow_redirects=False, limits=limits)


class HttpClients:
    """The clients every HTTP task shares (connection pooling): httpx fixes
    TLS verification per client, so there is one that verifies server
    certificates and one, for tasks with ``skip_tls_verify``, that does not.
    Created with the executor, closed at its shutdown."""

    def __init__(self) -> None:
        self.verifying = _make_client(verify=True)
        self.insecure = _make_client(verify=False)

    def for_task(self, task: crontrio_pb2.HttpTask) -> httpx.AsyncClient:
        return self.insecure if task.skip_tls_verify else self.verifying

    async def aclose(self) -> None:
        try:
            await self.verifying.aclose()
        finally:
            await self.insecure.aclose()


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
    try:
        async with asyncio.timeout(timeout):
            async with clients.for_task(task).stream(
                method,
                task.url,
                headers=dict(task.headers),
                content=task.body.encode() if task.body else None,
                timeout=httpx.Timeout(timeout),
                follow_redirects=task.follow_redirects,
            ) as response:
                status_code = response.status_code
                head = "".join(
                    f"HTTP {hop.status_code} {hop.reason_phrase} -> {hop.headers.get('location', '')}\n"
                    for hop in response.history
                )
                on_head(f"{head}HTTP {response.status_code} {response.reason_phrase}\n".encode())
                async for chunk in response.aiter_bytes():
                    on_body(chunk)
    except (TimeoutError, httpx.TimeoutException):
        return HttpResult(status_code=status_code, timed_out=True, error=f"timed out after {timeout:g}s")
    except httpx.ConnectError as exc:
        if _refused(exc):
            return HttpResult(error=f"connection refused: {task.url}")
        tls = _tls_error(exc)
        if isinstance(tls, ssl.SSLCertVerificationError):
            return HttpResult(
                error=f"TLS certificate verification failed for {task.url}: {tls.verify_message or tls.reason or tls}"
            )
        if tls is not None:
            return HttpResult(error=f"TLS error connecting to {task.url}: {tls.reason or tls}")
        return HttpResult(error=f"cannot connect to {task.url}: {exc}")
    except httpx.HTTPError as exc:
        return HttpResult(status_code=status_code, error=f"{type(exc).__name__}: {exc}")
    expected = list(task.expected_statuses)
    if is_expected(status_code, expected):
        return HttpResult(status_code=status_code, succeeded=True)
    wanted = ", ".join(map(str, expected)) if expected else "2xx"
    return HttpResult(status_code=status_code, error=f"HTTP status {status_code}, expected {wanted}")


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    # httpx wraps the socket or TLS error a few levels deep ("All connection
    # attempts failed" <- ConnectionRefusedError).
    seen: BaseException | None = exc
    for _ in range(10):  # chains can be cyclic; the cause is never deep
        if seen is None:
            break
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _refused(exc: BaseException) -> bool:
    return _cause(exc, ConnectionRefusedError) is not None


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    found = _cause(exc, ssl.SSLError)
    return found if isinstance(found, ssl.SSLError) else None
