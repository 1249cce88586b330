"""Runs one HTTP task: a single request through the executor's shared client."""

from __future__ import annotations

import asyncio
import logging
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


def make_client() -> httpx.AsyncClient:
    """The one client every HTTP task shares (connection pooling)."""
    # Redirects are not followed: like curl, a 3xx is the answer, and a job
    # that wants it to count as success lists it in expected_statuses.
    return httpx.AsyncClient(follow_redirects=False, limits=httpx.Limits(max_connections=200))


async def run_http(
    client: httpx.AsyncClient,
    task: crontrio_pb2.HttpTask,
    *,
    timeout_seconds: float,
    on_output: Callable[[bytes], None],
) -> HttpResult:
    """Send the request and stream ``HTTP <status> <reason>`` then the body to
    ``on_output``. ``timeout_seconds`` (> 0) bounds the whole exchange, not
    just each network operation, so a server trickling bytes cannot stretch
    it."""
    method = (task.method or "GET").upper()
    timeout = timeout_seconds
    status_code = 0
    try:
        async with asyncio.timeout(timeout):
            async with client.stream(
                method,
                task.url,
                headers=dict(task.headers),
                content=task.body.encode() if task.body else None,
                timeout=httpx.Timeout(timeout),
            ) as response:
                status_code = response.status_code
                on_output(f"HTTP {response.status_code} {response.reason_phrase}\n".encode())
                async for chunk in response.aiter_bytes():
                    on_output(chunk)
    except (TimeoutError, httpx.TimeoutException):
        return HttpResult(status_code=status_code, timed_out=True, error=f"timed out after {timeout:g}s")
    except httpx.ConnectError as exc:
        if _refused(exc):
            return HttpResult(error=f"connection refused: {task.url}")
        return HttpResult(error=f"cannot connect to {task.url}: {exc}")
    except httpx.HTTPError as exc:
        return HttpResult(status_code=status_code, error=f"{type(exc).__name__}: {exc}")
    expected = list(task.expected_statuses)
    if is_expected(status_code, expected):
        return HttpResult(status_code=status_code, succeeded=True)
    wanted = ", ".join(map(str, expected)) if expected else "2xx"
    return HttpResult(status_code=status_code, error=f"HTTP status {status_code}, expected {wanted}")


def _refused(exc: BaseException) -> bool:
    # httpx wraps the socket error a few levels deep ("All connection
    # attempts failed" <- ConnectionRefusedError).
    seen: BaseException | None = exc
    for _ in range(10):  # chains can be cyclic; the cause is never deep
        if seen is None:
            break
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
