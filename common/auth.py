"""Bearer-token authentication and roles for the dispatcher's gRPC API.

Tokens are configured in conf.ini as ``[tokens] name = role:sha256hex(token)``:
the file holds only hashes, so a leaked conf.ini grants nothing. Every call
to the Admin and Control services carries ``authorization: Bearer <token>``;
grpc.health.v1 and reflection stay open (load balancers and grpcurl need them).

The minimum role of every method lives in METHOD_ROLES below, and nowhere
else; a method missing from it needs ``admin`` (a new RPC is closed until
someone decides otherwise).

Console users log in with Admin.Login and get a session token (prefixed
``cts_``); it is sent the same way and checked against the store's sessions
table, with the user's role, and the user's name as the actor of every
audited change.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import inspect
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from crontrio.common.config import port_of
from crontrio.common.errors import ConfigError

log = logging.getLogger(__name__)

# Lowest to highest; a role may do everything the roles before it may.
ROLES = ("viewer", "operator", "admin")
ACTOR_LOCAL = "local"  # the actor when auth is off (loopback only)
AUTH_HEADER = "authorization"
# Session tokens (Admin.Login) start with this, so an API token never costs a
# database lookup and a session token never matches a [tokens] entry.
SESSION_TOKEN_PREFIX = "cts_"
# Login metadata from a proxy (the console): the address of the person behind
# it. Recorded in the audit log only, never trusted for anything else.
CLIENT_HEADER = "x-crontrio-client"
OPEN = "open"  # METHOD_ROLES value: anyone may call, token or not
KIND_LOCAL, KIND_TOKEN, KIND_SESSION = "local", "token", "session"

_ADMIN = "/crontrio.v1.Admin/"
_CONTROL = "/crontrio.v1.Control/"
METHOD_ROLES: dict[str, str] = {
    # read
    **{
        _ADMIN + m: "viewer"
        for m in (
            "GetJob",
            "ListJobs",
            "ListRuns",
            "CountRuns",
            "GetRun",
            "PreviewSpec",
            "ValidateJob",
            "TailRun",
            "ListExecutors",
            "ListDispatchers",
            "ListAudit",
            # a user's own session and password (SetUserPassword lets only an
            # admin change another's; one's own needs the current password)
            "Logout",
            "WhoAmI",
            "SetUserPassword",
        )
    },
    # the way in: refused attempts are slowed down and audited by the servicer
    _ADMIN + "Login": OPEN,
    # manage users
    **{_ADMIN + m: "admin" for m in ("CreateUser", "ListUsers", "DisableUser")},
    # operate existing jobs and runs
    **{_ADMIN + m: "operator" for m in ("RunJob", "KillRun", "PauseJob", "ResumeJob")},
    # change the job set
    **{_ADMIN + m: "admin" for m in ("CreateJob", "UpdateJob", "DeleteJob")},
    # monitor -> dispatcher: it can make runs happen, so only a full-power token
    **{_CONTROL + m: "admin" for m in ("NotifyJobChanges", "ReportExecutorHealth", "RetryRun")},
}
DEFAULT_ROLE = "admin"
# Services anyone may call, with or without a token.
OPEN_SERVICE_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

_actor: contextvars.ContextVar[str] = contextvars.ContextVar("crontrio_actor", default=ACTOR_LOCAL)
# (role, kind) of the current call; "local" callers (no tokens configured) are admins.
_identity: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar("crontrio_identity", default=("admin", KIND_LOCAL))

# An async lookup of a session token: (user name, role), or None when unknown,
# expired or the user is disabled.
SessionLookup = Callable[[str], Awaitable[tuple[str, str] | None]]


def current_actor() -> str:
    """Name of the token or user the current call was made with ("local" when auth is off)."""
    return _actor.get()


def current_role() -> str:
    """Role of the current call ("admin" for local callers when auth is off)."""
    return _identity.get()[0]


def current_kind() -> str:
    """How the current call authenticated: "local", "token" or "session"."""
    return _identity.get()[1]


def caller_is_admin() -> bool:
    return current_role() == "admin"


def hash_token(token: str) -> str:
    """The sha256 hex digest stored in [tokens] for a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def required_role(method: str) -> str | None:
    """Minimum role for a full method name ("/pkg.Service/Method"); None = open."""
    if method.startswith(OPEN_SERVICE_PREFIXES):
        return None
    role = METHOD_ROLES.get(method, DEFAULT_ROLE)
    return None if role == OPEN else role


def role_allows(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True)
class _Entry:
    name: str
    role: str
    digest: bytes


class TokenTable:
    """The configured tokens (already validated by common.config)."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        entries = []
        for name, value in tokens.items():
            role, _, digest = value.partition(":")
            entries.append(_Entry(name, role, bytes.fromhex(digest)))
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: str) -> tuple[str, str] | None:
        """(name, role) of the token, or None if it is not configured.

        Compares against every entry in constant time and never stops early,
        so the timing says nothing about which (or whether a) entry matched.
        """
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        found: tuple[str, str] | None = None
        for entry in self._entries:
            if hmac.compare_digest(presented, entry.digest) and found is None:
                found = (entry.name, entry.role)
        return found


def bearer_token(metadata: Any) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header, or None."""
    for key, value in metadata or ():
        if key.lower() != AUTH_HEADER:
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token and " " not in token:
            return token
        return None
    return None


def _wrap_handler(
    handler: grpc.RpcMethodHandler,
    unary: Callable[[Callable[..., Any]], Callable[..., Any]],
    streaming: Callable[[Callable[..., Any]], Callable[..., Any]],
) -> grpc.RpcMethodHandler:
    """The same handler with its behaviour wrapped (response-streaming or not)."""
    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), request_deserializer=des, response_serializer=ser)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            streaming(handler.unary_stream), request_deserializer=des, response_serializer=ser
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            unary(handler.stream_unary), request_deserializer=des, response_serializer=ser
        )
    assert handler.stream_stream is not None
    return grpc.stream_stream_rpc_method_handler(
        streaming(handler.stream_stream), request_deserializer=des, response_serializer=ser
    )


def _denying(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, details: str) -> grpc.RpcMethodHandler:
    async def deny(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, details)

    return _wrap_handler(handler, lambda _: deny, lambda _: deny)


def _as_actor(handler: grpc.RpcMethodHandler, name: str, role: str, kind: str) -> grpc.RpcMethodHandler:
    """Run the servicer with current_actor() == name, current_role() == role."""

    def unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            reset = _actor.set(name)
            reset_identity = _identity.set((role, kind))
            try:
                return await behavior(request, context)
            finally:
                _actor.reset(reset)
                _identity.reset(reset_identity)

        return call

    def streaming(behavior: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(behavior):

            async def gen(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                # Each RPC runs in its own task (own context copy), so the
                # value cannot leak into another call; no reset needed.
                _actor.set(name)
                _identity.set((role, kind))
                async for item in behavior(request, context):
                    yield item

            return gen
        return unary(behavior)  # a coroutine that writes with context.write()

    return _wrap_handler(handler, unary, streaming)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Checks the bearer token and role of every call before the servicer runs.

    `sessions` looks up console session tokens (none: only API tokens work).
    With `allow_local` (no [tokens] configured, so the API is loopback-only)
    a call without a token acts as the "local" admin, as before users
    existed; a token that is sent must still be valid.
    """

    def __init__(self, tokens: TokenTable, sessions: SessionLookup | None = None, allow_local: bool = False) -> None:
        self._tokens = tokens
        self._sessions = sessions
        self._allow_local = allow_local

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        needed = required_role(method)
        if handler is None or needed is None:
            return handler  # unknown method (UNIMPLEMENTED) or an open service
        token = bearer_token(handler_call_details.invocation_metadata)
        if token is None:
            if self._allow_local:
                return handler  # current_actor() "local", role admin (the defaults)
            return _denying(
                handler, grpc.StatusCode.UNAUTHENTICATED, "missing bearer token (send 'authorization: Bearer <token>')"
            )
        if token.startswith(SESSION_TOKEN_PREFIX):
            kind = KIND_SESSION
            try:
                found = await self._sessions(token) if self._sessions is not None else None
            except Exception as exc:  # noqa: BLE001 - the store is down: say so, do not crash the call
                log.warning("refused %s: cannot check the session: %s", method, exc)
                return _denying(handler, grpc.StatusCode.UNAVAILABLE, f"cannot check the session now: {exc}")
        else:
            kind = KIND_TOKEN
            found = self._tokens.authenticate(token)
        if found is None:
            log.warning("refused %s: unknown %s", method, "or expired session" if kind == KIND_SESSION else "token")
            return _denying(
                handler, grpc.StatusCode.UNAUTHENTICATED, "session expired or ended" if kind == KIND_SESSION else "unknown token"
            )
        name, role = found
        if not role_allows(role, needed):
            short = method.rsplit("/", 1)[-1]
            log.warning("refused %s for token %r: role %s, needs %s", method, name, role, needed)
            return _denying(
                handler,
                grpc.StatusCode.PERMISSION_DENIED,
                f"{short} requires role {needed}; {'user' if kind == KIND_SESSION else 'token'} {name!r} has role {role}",
            )
        return _as_actor(handler, name, role, kind)


def server_interceptors(tokens: Mapping[str, str], sessions: SessionLookup | None = None) -> list[grpc.aio.ServerInterceptor]:
    """The auth interceptor when tokens or sessions are in use; none otherwise.

    Without tokens, callers without one act as the local admin (the API is
    loopback-only then), but session tokens still carry their user's role.
    """
    if not tokens and sessions is None:
        return []
    return [AuthInterceptor(TokenTable(tokens), sessions, allow_local=not tokens)]


class BearerTokenInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor, grpc.aio.StreamStreamClientInterceptor
):
    """Client side: adds ``authorization: Bearer <token>`` to every call."""

    def __init__(self, token: str) -> None:
        self._header = (AUTH_HEADER, f"Bearer {token}")

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._header)
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials, details.wait_for_ready)

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)

    async def intercept_stream_stream(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: may resolve to anything


def admin_listen_address(listen: str, tokens: Mapping[str, str]) -> str:
    """Where the admin API may listen: as configured with tokens, loopback without.

    Without tokens anyone who can reach the port could create jobs (run
    commands on every executor), so it is never exposed beyond this host.
    """
    if tokens:
        log.info("admin API requires bearer tokens (%d configured)", len(tokens))
        return listen
    host = listen.rpartition(":")[0]
    if is_loopback(host):
        return listen
    safe = f"127.0.0.1:{port_of(listen)}"
    log.warning(
        "no [tokens] configured: the admin API is unauthenticated, so it listens on %s instead of %s "
        "(loopback only). To serve %s, add tokens to conf.ini [tokens] (`cronctl token new NAME ROLE` prints one)",
        safe,
        listen,
        listen,
    )
    return safe


class PlaintextTokensError(ConfigError, OSError):
    """Bearer tokens would travel in clear; names the settings to fix. Also an
    OSError, so the dispatcher's "cannot start: ..." handling prints one line."""


def check_plaintext_tokens(listen: str, tokens: Mapping[str, str], *, tls_admin: bool, allowed: bool) -> None:
    """Refuse to serve bearer tokens in clear beyond this host.

    With [tokens] and no TLS on the admin API, every call carries a token
    anyone on the path can read and replay. On loopback nobody is on the
    path; elsewhere the operator must say the network is trusted
    (`[dispatcher] allow_plaintext_tokens = true`), and is warned again.
    """
    if not tokens or tls_admin or is_loopback(listen.rpartition(":")[0]):
        return
    if not allowed:
        raise PlaintextTokensError(
            f"tls.admin: the admin API on {listen} would carry bearer tokens in clear. Turn on [tls] admin = true "
            "(with ca_file, cert_file, key_file), listen on a loopback address, or set "
            "[dispatcher] allow_plaintext_tokens = true if this network is trusted"
        )
    log.warning(
        "admin API on %s without TLS: bearer tokens travel in clear ([dispatcher] allow_plaintext_tokens = true); "
        "anyone who can watch this network can use them",
        listen,
    )
