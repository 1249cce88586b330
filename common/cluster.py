"""The cluster credential: what dispatchers and the monitor present to
executors, and the monitor to the dispatchers' Control service.

An executor runs whatever command it is sent, as its own user (often root),
so who may call it is the system's first trust boundary. The design:

- **Shared cluster secret.** Every call carries the metadata header
  ``x-crontrio-cluster: <secret>``. A server interceptor checks it before any
  servicer runs, comparing SHA-256 digests with ``hmac.compare_digest`` (the
  time taken says nothing about how much matched); a missing or wrong secret
  is UNAUTHENTICATED and nothing runs. It is a bearer secret, so it is as
  private as the channel: use [tls] internal on untrusted networks.
- **Mutual TLS counts as the credential on executors.** With ``[tls]
  internal = true`` an executor's TLS handshake already refuses every client
  without a certificate signed by the CA, so it checks nothing more. The
  dispatcher's Control service shares its port with the admin API (cronctl
  has no client certificate), so Control always needs the secret.
- **Where the secret comes from**, first found wins: ``[cluster] secret``
  (better as env ``CRONTRIO_CLUSTER_SECRET``), else the file ``[cluster]
  secret_file`` (default ``var/cluster.secret``; copy it to every host).
  With neither, a service that listens on loopback only (embedded mode,
  ``make run``) creates that file with a random secret, mode 0600; creation
  is atomic and exclusive, so services starting together agree on one
  secret. A service on any other address refuses to start, naming the
  setting: a secret made up on one host could not be known to the others.
- Open to anyone: ``grpc.health.v1`` (it reveals only serving state).
  Reflection on an executor needs the credential like every other call.

The secret is never logged, and never reaches a job's environment
(executor/task_env.py).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from crontrio.common.auth import _denying, is_loopback
from crontrio.common.config import ClusterConfig, cluster_secret_problem
from crontrio.common.errors import ConfigError

log = logging.getLogger(__name__)

CLUSTER_HEADER = "x-crontrio-cluster"
HEALTH_PREFIX = "/grpc.health.v1.Health/"
CONTROL_PREFIX = "/crontrio.v1.Control/"
SECRET_ENV = "CRONTRIO_CLUSTER_SECRET"


class ClusterSecretError(ConfigError, OSError):
    """No usable cluster secret; names the setting to fix. Also an OSError, so
    the services' "cannot start: ..." handling prints it as one line."""


def executor_protects(method: str) -> bool:
    """Executors: every call but health needs the credential (reflection included)."""
    return not method.startswith(HEALTH_PREFIX)


def control_protects(method: str) -> bool:
    """Dispatchers: the Control service (the monitor's) needs the credential;
    the admin API has its own tokens (common/auth.py)."""
    return method.startswith(CONTROL_PREFIX)


# ------------------------------------------------------------ the secret


def resolve_secret(cluster: ClusterConfig, *, listen: str, service: str, mtls_hint: bool = False) -> str:
    """The cluster secret this service uses (see the module docstring).

    `listen` is the address the service serves on: loopback allows creating
    the secret file; anything else requires a configured secret.
    `mtls_hint` adds "or [tls] internal" to the refusal (executors only).
    """
    if cluster.secret:
        return cluster.secret  # validated by common.config
    path = Path(cluster.secret_file) if cluster.secret_file else None
    if path is not None:
        found = _read_secret_file(path)
        if found is not None:
            return found
    host = listen.rpartition(":")[0]
    if path is not None and is_loopback(host):
        return _create_secret_file(path)
    where = f"the file cluster.secret_file ({path})" if path is not None else "cluster.secret_file"
    alternative = ", or turn on mutual TLS ([tls] internal = true)" if mtls_hint else ""
    raise ClusterSecretError(
        f"cluster.secret: the {service} listens on {listen}, not a loopback address, and no cluster secret is configured. "
        f"Set [cluster] secret (or env {SECRET_ENV}) to the secret every crontrio service shares, or put it in "
        f"{where}{alternative}. It is not generated here: services on other hosts could not know it."
    )


def _read_secret_file(path: Path) -> str | None:
    """The secret in `path`, None when there is no such file."""
    try:
        fd = os.open(path, os.O_RDONLY)  # symlinks allowed: secret mounts use them
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ClusterSecretError(f"cluster.secret_file: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "r", encoding="ascii", errors="replace") as f:
        mode = os.fstat(f.fileno()).st_mode
        # Readable by every user of the host: refuse (a shared group may read it).
        if stat.S_IMODE(mode) & 0o007:
            raise ClusterSecretError(
                f"cluster.secret_file: {str(path)!r} is accessible to every user (mode {stat.S_IMODE(mode):04o}); "
                f"`chmod 600 {path}`"
            )
        secret = f.read().strip()
    problem = cluster_secret_problem(secret)
    if problem:
        raise ClusterSecretError(f"cluster.secret_file: the secret in {str(path)!r} {problem}")
    return secret


def _create_secret_file(path: Path) -> str:
    """Create `path` with a new random secret, mode 0600; if another service
    created it first, use theirs.

    The secret is written to a private temporary file (O_CREAT|O_EXCL, 0600)
    and then hard-linked to `path`: the link is atomic and fails if `path`
    exists, so exactly one creator wins and no reader ever sees a partly
    written file.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(32)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(secret + "\n")
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                found = _read_secret_file(path)  # another service was first
                if found is None:  # it was created and removed at once: start over
                    return _create_secret_file(path)
                return found
        finally:
            os.unlink(tmp)
    except OSError as exc:
        if isinstance(exc, ClusterSecretError):
            raise
        raise ClusterSecretError(f"cluster.secret_file: cannot create {str(path)!r}: {exc.strerror or exc}") from None
    log.info(
        "created the cluster secret file %s (mode 0600) for services on this host; services on other hosts need the "
        "same secret ([cluster] secret, env %s, or a copy of the file)",
        path,
        SECRET_ENV,
    )
    return secret


# ------------------------------------------------------------ server side


def presented_secret(metadata: Any) -> str | None:
    """The value of the cluster header in `metadata`, or None."""
    for key, value in metadata or ():
        if key.lower() == CLUSTER_HEADER:
            return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return None


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "replace")).digest()


class ClusterAuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses, with UNAUTHENTICATED, every call `protects` names that does not
    carry the cluster secret; runs before the servicer, so nothing happens."""

    def __init__(self, secret: str, protects: Callable[[str], bool]) -> None:
        if not secret:
            raise ValueError("ClusterAuthInterceptor needs a secret")
        self._digest = _digest(secret)
        self._protects = protects

    def allows(self, metadata: Any) -> bool:
        presented = presented_secret(metadata)
        # Compare digests: equal lengths, so compare_digest's time is constant.
        return presented is not None and hmac.compare_digest(_digest(presented), self._digest)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self._protects(method):
            return handler
        metadata = handler_call_details.invocation_metadata
        if self.allows(metadata):
            return handler
        missing = presented_secret(metadata) is None
        reason = "missing cluster credential" if missing else "wrong cluster secret"
        log.warning("refused %s: %s", method, reason)  # never the value presented
        return _denying(
            handler,
            grpc.StatusCode.UNAUTHENTICATED,
            f"{reason}: crontrio services call each other with the shared cluster secret "
            f"({CLUSTER_HEADER} metadata, [cluster] secret) or mutual TLS",
        )


# ------------------------------------------------------------ client side


class _AddsClusterHeader:
    def __init__(self, secret: str) -> None:
        self._header = (CLUSTER_HEADER, secret)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<secret>)"

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._header)
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials, details.wait_for_ready)


class _UnaryUnary(_AddsClusterHeader, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


class _UnaryStream(_AddsClusterHeader, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


class _StreamUnary(_AddsClusterHeader, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


class _StreamStream(_AddsClusterHeader, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


def cluster_secret_interceptors(secret: str) -> list[grpc.aio.ClientInterceptor]:
    """Client interceptors adding ``x-crontrio-cluster: <secret>`` to every
    call of a channel. One object per call kind: grpc.aio files each
    interceptor under the first kind it implements only, so one object
    implementing all four would never see streaming calls."""
    return [_UnaryUnary(secret), _UnaryStream(secret), _StreamUnary(secret), _StreamStream(secret)]
