"""The console's signing key: read from a file, created (random, 0600) when missing."""

from __future__ import annotations

import logging
import os
import secrets

log = logging.getLogger(__name__)
KEY_BYTES = 32


def load_or_create_secret(path: str) -> bytes:
    """The key in `path` (hex); a new random one written there (mode 0600) if absent.

    Created with O_EXCL, so two processes starting together agree on one key."""
    try:
        with open(path) as f:
            key = bytes.fromhex(f.read().strip())
    except FileNotFoundError:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        key = secrets.token_bytes(KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_or_create_secret(path)  # the other process won; use its key
        with os.fdopen(fd, "w") as f:
            f.write(key.hex() + "\n")
        log.info("created the console's cookie signing key in %s (mode 0600)", os.path.abspath(path))
        return key
    if len(key) < 16:
        raise ValueError(f"console.secret_file: {path} holds too short a key (delete it to make a new one)")
    if os.stat(path).st_mode & 0o077:
        log.warning("%s is readable by other users: whoever reads it can forge console cookies (chmod 600)", path)
    return key
