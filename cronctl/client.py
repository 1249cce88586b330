"""A blocking gRPC client of the dispatcher's Admin service, with failover
across several --server addresses.

Every call carries the bearer token (--token / CRONTRIO_TOKEN) when one is
given; with a CA (--ca / CRONTRIO_CA) the dispatcher is reached over TLS and
its certificate is verified against that CA.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, TypeVar

import click
import grpc

from common.auth import AUTH_HEADER
from common.grpc_server import CHANNEL_OPTIONS
from protos import crontrio_pb2_grpc as pb_grpc

T = TypeVar("T")
CALL_TIMEOUT_SECONDS = 15.0
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
                stub = pb_grpc.AdminStub(channel)
                try:
                    return method(stub)(request, timeout=CALL_TIMEOUT_SECONDS, metadata=self.metadata)
                except grpc.RpcError as exc:
                    if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                        failures.append(f"{address}: {exc.details()}")
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
                    refused = self._refused(exc, address)
                    if refused is not None:
                        raise refused from None
                    raise
        raise self._no_server(failures)

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
        if not self.ca and "Connection refused" not in message:
            # A plaintext client meeting a TLS server only sees the socket close.
            message += " (if the dispatcher serves TLS, give its CA with --ca or CRONTRIO_CA)"
        return NoServerError(message)
