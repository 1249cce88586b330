"""A blocking gRPC client of the dispatcher's Admin service, with failover
across several --server addresses.

Every call carries the bearer token (--token / CRONTRIO_TOKEN) when one is
given; with a CA (--ca / CRONTRIO_CA) the dispatcher is reached over TLS and
its certificate is verified against that CA.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, TypeVar

import click
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crontrio.common.auth import AUTH_HEADER
from crontrio.common.grpc_channel import CHANNEL_OPTIONS
from crontrio.protos import crontrio_pb2_grpc as pb_grpc

T = TypeVar("T")
CALL_TIMEOUT_SECONDS = 15.0
# A dispatcher that does not finish connecting (TCP, TLS, HTTP/2 settings) in
# this long is passed over for the next --server: one that accepts and then
# hangs must not hold every command for the whole call deadline.
CONNECT_TIMEOUT_SECONDS = 2.0
DEFAULT_PORT = 5920
EXECUTOR_SERVICE = "crontrio.v1.Executor"
_SETTLED = (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN)
EXIT_AUTH = 4  # refused: no, unknown or too weak a token
EXIT_INVALID = 2


class NoServerError(Exception):
    """No dispatcher answered."""


class _CronctlError(click.ClickException):
    """Printed as ``error: ...`` (like every other cronctl error) with its exit code."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


class AuthError(_CronctlError):
    """The dispatcher refused the token (UNAUTHENTICATED or PERMISSION_DENIED)."""

    exit_code = EXIT_AUTH


class CaFileError(_CronctlError):
    exit_code = EXIT_INVALID


def with_default_port(address: str) -> str:
    """host -> host:5920 (the dispatcher's port); IPv6 as [::1] or bare ::1."""
    address = address.strip()
    if address.startswith("["):
        return address if "]:" in address else f"{address}:{DEFAULT_PORT}"
    if address.count(":") > 1:  # a bare IPv6 address has no room for a port
        return f"[{address}]:{DEFAULT_PORT}"
    return address if ":" in address else f"{address}:{DEFAULT_PORT}"


def _settles(channel: grpc.Channel, timeout: float) -> bool:
    """Whether the channel connects, or fails to, within `timeout`: a refused
    connection settles at once (the call then fails fast with its reason); a
    peer that accepts and never speaks HTTP/2 does not settle."""
    settled = threading.Event()

    def seen(state: grpc.ChannelConnectivity) -> None:
        if state in _SETTLED:
            settled.set()

    channel.subscribe(seen, try_to_connect=True)
    try:
        return settled.wait(timeout)
    finally:
        channel.unsubscribe(seen)


def _is_executor(channel: grpc.Channel) -> bool:
    """Whether the peer serves the Executor service. Executors leave only
    health open (their API needs the cluster secret), so ask health."""
    try:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=EXECUTOR_SERVICE), timeout=2)
    except grpc.RpcError:
        return False  # NOT_FOUND on a dispatcher or monitor
    return True


class AdminClient:
    def __init__(self, servers: list[str], token: str = "", ca: str = "") -> None:
        self.servers = servers
        self.token = token
        self.ca = ca
        self._root_certs: bytes | None = None

    @property
    def metadata(self) -> list[tuple[str, str]]:
        """Call metadata: the bearer token, if any."""
        return [(AUTH_HEADER, f"Bearer {self.token}")] if self.token else []

    def _channel(self, address: str) -> grpc.Channel:
        if not self.ca:
            return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        if self._root_certs is None:
            try:
                with open(self.ca, "rb") as f:
                    self._root_certs = f.read()
            except OSError as exc:
                raise CaFileError(f"--ca: cannot read {self.ca!r}: {exc.strerror or exc}") from None
            if b"-----BEGIN CERTIFICATE-----" not in self._root_certs:
                raise CaFileError(f"--ca: {self.ca!r} is not a PEM certificate")
        credentials = grpc.ssl_channel_credentials(root_certificates=self._root_certs)
        return grpc.secure_channel(address, credentials, options=CHANNEL_OPTIONS)

    def call(self, method: Callable[[pb_grpc.AdminStub], Callable[..., T]], request: object) -> T:
        """Call on the first server that answers; a server that is down is skipped."""
        failures: list[str] = []
        for address in self.servers:
            with self._channel(address) as channel:
                if not _settles(channel, CONNECT_TIMEOUT_SECONDS):
                    failures.append(f"{address}: no answer within {CONNECT_TIMEOUT_SECONDS:g} s (hung?)")
                    continue
                stub = pb_grpc.AdminStub(channel)
                try:
                    return method(stub)(request, timeout=CALL_TIMEOUT_SECONDS, metadata=self.metadata)
                except grpc.RpcError as exc:
                    if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                        failures.append(f"{address}: {exc.details()}")
                        continue
                    if self._not_a_dispatcher(exc, channel, address, failures):
                        continue
                    refused = self._refused(exc, address)
                    if refused is not None:
                        raise refused from None
                    raise
        raise self._no_server(failures)

    def stream(self, method: Callable[[pb_grpc.AdminStub], Callable[..., Iterable[T]]], request: object) -> Iterator[T]:
        """A server-streaming call (no deadline: it may follow a run for long) on
        the first server that answers. Once something was received, a broken
        stream is an error, never a silent restart elsewhere (that would repeat output)."""
        failures: list[str] = []
        for address in self.servers:
            with self._channel(address) as channel:
                if not _settles(channel, CONNECT_TIMEOUT_SECONDS):
                    failures.append(f"{address}: no answer within {CONNECT_TIMEOUT_SECONDS:g} s (hung?)")
                    continue
                stub = pb_grpc.AdminStub(channel)
                received = False
                try:
                    for item in method(stub)(request, metadata=self.metadata):
                        received = True
                        yield item
                    return
                except grpc.RpcError as exc:
                    if not received and exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                        failures.append(f"{address}: {exc.details()}")
                        continue
                    if not received and self._not_a_dispatcher(exc, channel, address, failures):
                        continue
                    refused = self._refused(exc, address)
                    if refused is not None:
                        raise refused from None
                    raise
        raise self._no_server(failures)

    @staticmethod
    def _not_a_dispatcher(exc: grpc.RpcError, channel: grpc.Channel, address: str, failures: list[str]) -> bool:
        """True (and why, in `failures`) when the server is an executor or
        serves no admin API: the next --server is tried instead."""
        code = exc.code()
        if code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNIMPLEMENTED):
            return False
        if _is_executor(channel):
            failures.append(f"{address}: that is an executor, not a dispatcher (dispatchers listen on port {DEFAULT_PORT})")
            return True
        if code == grpc.StatusCode.UNIMPLEMENTED:
            failures.append(f"{address}: not a dispatcher: it serves no admin API ({exc.details()})")
            return True
        return False

    def _refused(self, exc: grpc.RpcError, address: str) -> AuthError | None:
        """An AuthError (exit 4) if the server refused our token; None otherwise."""
        code = exc.code()
        if code == grpc.StatusCode.UNAUTHENTICATED:
            hint = "a valid one" if self.token else "one"
            return AuthError(f"not authenticated by {address}: {exc.details()}; give {hint} with --token or CRONTRIO_TOKEN")
        if code == grpc.StatusCode.PERMISSION_DENIED:
            return AuthError(f"permission denied by {address}: {exc.details()}")
        return None

    def _no_server(self, failures: list[str]) -> NoServerError:
        message = "; ".join(failures)
        known = ("Connection refused", "not a dispatcher", "no answer within")
        if not self.ca and not any(k in message for k in known):
            # A plaintext client meeting a TLS server only sees the socket close.
            message += " (if the dispatcher serves TLS, give its CA with --ca or CRONTRIO_CA)"
        return NoServerError(message)
