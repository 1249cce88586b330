"""Start crontrio services as real processes for tests and benchmarks, and always stop them."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crontrio.common.config import DatabaseConfig

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (Linux /proc).

    Killed orphans may stay zombies for a while (or forever in a container
    whose PID 1 does not reap), and os.kill(pid, 0) still "finds" those.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    state = stat[stat.rfind(b")") + 2 :].split()[0]
    return state not in (b"Z", b"X")


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `condition` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the condition may fail until the thing is up
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else ""))


async def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """The async twin of wait_for: `condition` may return a value or an awaitable.
    Returns its first truthy value; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def cluster_secret(directory: Path) -> str:
    """The cluster secret services started in `directory` (their cwd, with
    the default [cluster] secret_file) created for themselves."""
    return (directory / "var" / "cluster.secret").read_text().strip()


def cluster_channel(address: str, secret: str, **kwargs: Any) -> grpc.aio.Channel:
    """An async channel to an executor (or a Control service) that presents
    the cluster secret on every call, as dispatchers and the monitor do."""
    from crontrio.common.cluster import cluster_secret_interceptors

    return grpc.aio.insecure_channel(address, interceptors=cluster_secret_interceptors(secret), **kwargs)


class _SyncClusterHeader(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the cluster secret to every call of a blocking channel (the
    blocking API, unlike grpc.aio, takes one object for every call type)."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def _details(self, details: Any) -> Any:
        from crontrio.common.cluster import CLUSTER_HEADER

        metadata = [*(details.metadata or ()), (CLUSTER_HEADER, self._secret)]
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def cluster_sync_channel(address: str, secret: str, **kwargs: Any) -> grpc.Channel:
    """A blocking channel to an executor (or Control) presenting the cluster secret."""
    return grpc.intercept_channel(grpc.insecure_channel(address, **kwargs), _SyncClusterHeader(secret))


def is_serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
        return reply.status == health_pb2.HealthCheckResponse.SERVING


# /metrics off: the defaults (fixed ports 5924, 5925) would clash between
# services that tests run at the same time (set for every child in tests/conftest.py).
METRICS_OFF = {"CRONTRIO_DISPATCHER_METRICS_LISTEN": "", "CRONTRIO_EXECUTOR_METRICS_LISTEN": ""}


def _metrics_env(conf: Path) -> dict[str, str]:
    """Our environment, with /metrics off unless the conf sets metrics_listen."""
    if "metrics_listen" in conf.read_text():
        return {k: v for k, v in os.environ.items() if k not in METRICS_OFF}
    return {**os.environ, **METRICS_OFF}


class ChildProcess:
    """One child process with its output in a log file, always stoppable: the
    one launcher under every service the tests and the benchmarks start."""

    def __init__(
        self,
        argv: list[str],
        cwd: Path,
        log_path: Path,
        env: dict[str, str],
        preexec_fn: Callable[[], None] | None = None,  # e.g. a resource limit; nothing that takes locks
    ) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        # The checkout first: children import crontrio (and bench) from it.
        env = {**env, "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 15.0, kill_wait: float = 5.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not stop. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(kill_wait)
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode

    def kill(self, wait: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(wait)


class ServiceProcess(ChildProcess):
    """One `python -m crontrio.<service> -c <conf>` child, run in the conf's directory."""

    def __init__(
        self,
        service: str,
        conf: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        preexec_fn: Callable[[], None] | None = None,  # e.g. a resource limit for the child
    ) -> None:
        self.service = service
        super().__init__(
            [sys.executable, "-m", f"crontrio.{service}", "-c", str(conf), *(args or [])],
            conf.parent,
            log_path,
            {**_metrics_env(conf), "PYTHONUNBUFFERED": "1", **(env or {})},
            preexec_fn,
        )


def database_section(db: DatabaseConfig) -> dict[str, str]:
    """``db`` as the [database] section of a conf.ini (SQLite or MySQL/MariaDB)."""
    if db.driver == "sqlite":
        return {"driver": "sqlite", "path": db.path}
    return {
        "driver": db.driver,
        "host": db.host,
        "port": str(db.port),
        "username": db.username,
        "password": db.password,
        "database": db.database,
    }


def write_conf(directory: Path, sections: dict[str, dict[str, str]], extra: dict[str, dict[str, str]] | None = None) -> Path:
    """A conf.ini from sections; `extra` adds sections or overrides keys within them."""
    sections = {name: dict(values) for name, values in sections.items()}
    for name, values in (extra or {}).items():
        sections.setdefault(name, {}).update(values)
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {v}" for k, v in values.items())
        lines.append("")
    path = directory / "conf.ini"
    path.write_text("\n".join(lines))
    return path
