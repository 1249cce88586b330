"""Users and sessions on the Admin service: login, logout, who am I, user admin.

Mixed into AdminServicer (dispatcher/admin_servicer.py); the rules for who
may call what are in common/auth.py METHOD_ROLES, the rest lives here:
a non-admin may change only their own password, with the current one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets

import grpc

from crontrio.common.auth import (
    CLIENT_HEADER,
    KIND_SESSION,
    ROLES,
    SESSION_TOKEN_PREFIX,
    bearer_token,
    current_actor,
    current_kind,
    current_role,
)
from crontrio.common.clock import now_ms
from crontrio.common.passwords import dummy_hash, hash_password, new_password, password_problem, verify_password
from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.async_users import AsyncUserStore
from crontrio.common.store.users import User, UserExistsError, UserStore
from crontrio.dispatcher.audit import AuditLog
from crontrio.dispatcher.login_throttle import PEER_PREFIX, LoginThrottle
from crontrio.protos import crontrio_pb2 as pb

log = logging.getLogger(__name__)
USER_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
INITIAL_ADMIN = "admin"
BAD_LOGIN = "wrong user name or password"  # the same whatever was wrong


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def user_to_pb(user: User) -> pb.User:
    return pb.User(name=user.name, role=user.role, disabled=user.disabled, created_ms=user.created_ms, updated_ms=user.updated_ms)


def _peer_host(context: grpc.aio.ServicerContext) -> str:
    """The caller's address without its port ("ipv4:127.0.0.1:5555" -> "ipv4:127.0.0.1")."""
    peer = context.peer() or "unknown"
    return peer.rpartition(":")[0] if peer.count(":") > 1 else peer


def _where(peer: str, context: grpc.aio.ServicerContext) -> str:
    """Audit detail of a login: the peer, and the client a proxy (the console) names."""
    found = {"peer": peer}
    for key, value in context.invocation_metadata() or ():
        if key == CLIENT_HEADER and isinstance(value, str):
            found["client"] = value[:100]
    return json.dumps(found)


def ensure_initial_admin(users: UserStore, password_file: str) -> str | None:
    """On a store with no users: create "admin" with a random password, write
    it to `password_file` (0600) and log it once. The password, or None when
    users existed (or another dispatcher created the first one meanwhile)."""
    if users.count_users():
        return None
    password = new_password()
    try:
        users.create_user(INITIAL_ADMIN, "admin", hash_password(password))
    except UserExistsError:
        return None  # another dispatcher won the race; it says so in its log
    directory = os.path.dirname(os.path.abspath(password_file))
    os.makedirs(directory, exist_ok=True)
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # also when the file existed with looser bits
        f.write(password + "\n")
    log.warning(
        "no users yet: created user %r with password %s (also in %s, mode 0600); "
        "log in to the console with it, then change it (`cronctl user passwd %s`)",
        INITIAL_ADMIN,
        password,
        os.path.abspath(password_file),
        INITIAL_ADMIN,
    )
    return password


class SessionAuth:
    """Looks session tokens up in the store, for common.auth.AuthInterceptor."""

    def __init__(self, users: AsyncUserStore) -> None:
        self._users = users

    async def __call__(self, token: str) -> tuple[str, str] | None:
        found = await self._users.session_user(token_hash(token), now_ms())
        return (found.name, found.role) if found is not None else None


class UserAdmin:
    """The user and session RPCs of the Admin service (a mixin of AdminServicer)."""

    _users: AsyncUserStore
    _store: AsyncStore
    _audit: AuditLog
    _throttle: LoginThrottle
    _session_ttl_ms: int

    def _init_users(self, users: AsyncUserStore, session_ttl_seconds: int, throttle: LoginThrottle | None = None) -> None:
        self._users = users
        self._session_ttl_ms = session_ttl_seconds * 1000
        self._throttle = throttle or LoginThrottle()

    async def Login(self, request: pb.LoginRequest, context: grpc.aio.ServicerContext) -> pb.LoginReply:
        if not request.user:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "user: required")
        if not request.password:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "password: required")
        peer = _peer_host(context)
        keys = ("user:" + request.user.lower(), PEER_PREFIX + peer)
        where = _where(peer, context)
        wait = self._throttle.wait_seconds(keys)
        if wait > 0:
            log.warning("login as %r from %s refused: too many failed attempts (%.0f s left)", request.user, peer, wait)
            await self._audit.record("user.login_throttled", request.user[:255], after=where, actor=f"anonymous@{peer}"[:128])
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"too many failed logins; try again in {max(1, round(wait))} s"
            )
        user = await self._users.get_user(request.user)
        stored = user.password_hash if user is not None else None
        matches = await self._store.run_blocking(_verify, request.password, stored)
        if user is None or user.disabled or not matches:
            self._throttle.failed(keys)
            reason = "no such user" if user is None else "user disabled" if user.disabled else "wrong password"
            log.warning("failed login as %r from %s (%s)", request.user, peer, reason)
            await self._audit.record("user.login_failed", request.user[:255], after=where, actor=f"anonymous@{peer}"[:128])
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, BAD_LOGIN)
        assert user is not None
        self._throttle.succeeded(keys)
        token = SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = now_ms() + self._session_ttl_ms
        await self._users.add_session(token_hash(token), user.id, expires)
        await self._users.prune_sessions(now_ms())
        log.info("user %s logged in from %s (role %s)", user.name, peer, user.role)
        await self._audit.record("user.login", user.name, after=where, actor=user.name)
        return pb.LoginReply(token=token, role=user.role, expires_ms=expires, user=user.name)

    async def Logout(self, request: pb.LogoutRequest, context: grpc.aio.ServicerContext) -> pb.LogoutReply:
        token = bearer_token(context.invocation_metadata())
        if current_kind() != KIND_SESSION or token is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not a session: only a login session can be logged out")
        assert token is not None
        ended = await self._users.end_session(token_hash(token))
        log.info("user %s logged out", current_actor())
        await self._audit.record("user.logout", current_actor())
        return pb.LogoutReply(ended=ended)

    async def WhoAmI(self, request: pb.WhoAmIRequest, context: grpc.aio.ServicerContext) -> pb.WhoAmIReply:
        expires = 0
        token = bearer_token(context.invocation_metadata())
        if current_kind() == KIND_SESSION and token is not None:
            found = await self._users.session_user(token_hash(token), now_ms())
            expires = found.expires_ms if found is not None else 0
        return pb.WhoAmIReply(name=current_actor(), role=current_role(), kind=current_kind(), expires_ms=expires)

    async def _check_new_user(self, name: str, role: str, password: str, context: grpc.aio.ServicerContext) -> None:
        if not USER_NAME.match(name):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"name: 1 to 64 letters, digits, '.', '_', '-' or '@', got {name!r}"
            )
        if role not in ROLES:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"role: expected one of {', '.join(ROLES)}, got {role!r}")
        problem = password_problem(password)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"password: {problem}")

    async def CreateUser(self, request: pb.CreateUserRequest, context: grpc.aio.ServicerContext) -> pb.User:
        await self._check_new_user(request.name, request.role, request.password, context)
        hashed = await self._store.run_blocking(hash_password, request.password)
        try:
            user = await self._users.create_user(request.name, request.role, hashed)
        except UserExistsError:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"name: a user named {request.name!r} already exists")
        log.info("user %s created (role %s) by %s", user.name, user.role, current_actor())
        await self._audit.record("user.create", user.name, after=json.dumps({"name": user.name, "role": user.role}))
        return user_to_pb(user)

    async def ListUsers(self, request: pb.ListUsersRequest, context: grpc.aio.ServicerContext) -> pb.ListUsersReply:
        return pb.ListUsersReply(users=[user_to_pb(u) for u in await self._users.list_users()])

    async def SetUserPassword(self, request: pb.SetUserPasswordRequest, context: grpc.aio.ServicerContext) -> pb.User:
        if not request.name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name: required")
        own = current_kind() == KIND_SESSION and request.name == current_actor()
        if not own and current_role() != "admin":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "SetUserPassword for another user requires role admin")
        if own:
            # Also for admins: a session left open (or a stolen cookie) must
            # not be enough to take over the account.
            user = await self._users.get_user(request.name)
            if user is None or not await self._store.run_blocking(verify_password, request.current_password, user.password_hash):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "current_password: wrong password")
        problem = password_problem(request.password)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"password: {problem}")
        hashed = await self._store.run_blocking(hash_password, request.password)
        token = bearer_token(context.invocation_metadata())
        keep = token_hash(token) if own and token else ""
        updated = await self._users.set_password(request.name, hashed, keep)
        if updated is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no user {request.name!r}")
        assert updated is not None
        log.info("password of user %s changed by %s; their other sessions ended", updated.name, current_actor())
        await self._audit.record("user.password", updated.name)
        return user_to_pb(updated)

    async def DisableUser(self, request: pb.UserRef, context: grpc.aio.ServicerContext) -> pb.User:
        if not request.name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name: required")
        if current_kind() == KIND_SESSION and request.name == current_actor():
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "name: you cannot disable yourself")
        updated = await self._users.disable_user(request.name)
        if updated is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no user {request.name!r}")
        assert updated is not None
        log.info("user %s disabled by %s; their sessions ended", updated.name, current_actor())
        await self._audit.record("user.disable", updated.name)
        return user_to_pb(updated)


def _verify(password: str, stored: str | None) -> bool:
    """verify_password against the user's hash, or (no such user) against the
    dummy one, made here on the store's thread the first time, off the loop."""
    return verify_password(password, stored if stored is not None else dummy_hash())
