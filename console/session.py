"""Session cookies and CSRF tokens.

The cookie holds the dispatcher's session token (with the user, role and
expiry for display), signed with the console's key: a forged or altered
cookie is ignored, and even a valid one is checked by the dispatcher on
every call. CSRF tokens are HMACs of the session token, so they need no
storage and die with the session; before login, of a random pre-session
cookie (login CSRF).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from aiohttp import web

from crontrio.common.clock import now_ms

SESSION_COOKIE = "crontrio_session"
PRE_COOKIE = "crontrio_pre"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Session:
    token: str
    user: str
    role: str
    expires_ms: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, purpose: str, data: bytes) -> bytes:
        return hmac.new(self._key, purpose.encode() + b"\0" + data, hashlib.sha256).digest()

    def sign(self, purpose: str, data: bytes) -> str:
        return f"{_b64(data)}.{_b64(self._mac(purpose, data))}"

    def unsign(self, purpose: str, value: str) -> bytes | None:
        body, _, mac = value.partition(".")
        try:
            data, given = _unb64(body), _unb64(mac)
        except ValueError:
            return None
        return data if hmac.compare_digest(given, self._mac(purpose, data)) else None

    # ------------------------------------------------------------ session

    def session_cookie(self, session: Session) -> str:
        payload = {"t": session.token, "u": session.user, "r": session.role, "e": session.expires_ms}
        return self.sign("session", json.dumps(payload, separators=(",", ":")).encode())

    def session_from(self, request: web.Request) -> Session | None:
        value = request.cookies.get(SESSION_COOKIE)
        data = self.unsign("session", value) if value else None
        if data is None:
            return None
        try:
            payload = json.loads(data)
            session = Session(str(payload["t"]), str(payload["u"]), str(payload["r"]), int(payload["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires_ms > now_ms() else None

    # --------------------------------------------------------------- csrf

    def csrf_for(self, secret: str) -> str:
        return _b64(self._mac("csrf", secret.encode()))

    def csrf_ok(self, secret: str, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf_for(secret).encode())


def new_pre_session() -> str:
    return secrets.token_urlsafe(24)


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="Strict", secure=request.secure)
