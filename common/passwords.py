"""Password hashing for console users: scrypt from the standard library.

A hash is stored as ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``: the
parameters travel with it, so they can be raised later and old hashes still
verify. Verification costs about as much as hashing (tens of ms of CPU, on
purpose): callers on an event loop run it on a worker thread.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

# RFC 7914's interactive-login figures; 16 MiB of memory per hash.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
KEY_BYTES = 32
SALT_BYTES = 16
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # hashing a megabyte "password" is a denial of service
_SCHEME = "scrypt"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=256 * 1024 * 1024)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
    return f"{_SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored`, compared in constant time.
    A malformed stored hash never matches (and never raises)."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != _SCHEME:
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        actual = _scrypt(password[:MAX_PASSWORD_LENGTH], salt, int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def dummy_hash() -> str:
    """Verified against when the user does not exist, so an unknown name costs
    the same time as a wrong password (the timing says nothing either way).
    Made at the first failed lookup, not at import: a scrypt hash costs every
    process that imports this module ~50 ms of start-up (the dispatcher's too)."""
    return hash_password(secrets.token_urlsafe(16))


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must be at most {MAX_PASSWORD_LENGTH} characters"
    return None


def new_password() -> str:
    """A random password for a generated account (about 130 bits)."""
    return secrets.token_urlsafe(22)
