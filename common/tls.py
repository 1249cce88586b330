"""TLS credentials from [tls]: one CA signs every crontrio certificate.

- ``admin = true``: the dispatcher serves Admin/Control/health over TLS with its
  server certificate; clients (cronctl --ca, the monitor) verify it with the CA.
- ``internal = true``: executors serve mutual TLS (a client certificate signed
  by the CA is required); dispatchers and the monitor present cert/key.

The files are read once per process (the first time they are needed, which
the services make happen at start), so a bad path or a file that is not PEM
stops the service with ``tls.<key>`` in the message.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import grpc

from crontrio.common.config import TlsConfig
from crontrio.common.errors import ConfigError


class TlsFileError(ConfigError, OSError):
    """A [tls] file cannot be read or is not PEM; names ``tls.<key>``.

    Also an OSError, so the services' "cannot start: ..." handling prints it
    as one clear line.
    """


@dataclass(frozen=True)
class TlsFiles:
    ca: bytes
    cert: bytes
    key: bytes


def _read(key: str, path: str) -> bytes:
    if not path:
        raise TlsFileError(f"tls.{key}: required when tls.admin or tls.internal is on")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise TlsFileError(f"tls.{key}: cannot read {path!r}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise TlsFileError(f"tls.{key}: {path!r} is not a PEM file")
    return data


@functools.cache
def load_tls(tls: TlsConfig) -> TlsFiles:
    """The CA, certificate and key of `tls`, read once."""
    return TlsFiles(ca=_read("ca_file", tls.ca_file), cert=_read("cert_file", tls.cert_file), key=_read("key_file", tls.key_file))


def server_credentials(tls: TlsConfig, *, require_client_auth: bool) -> grpc.ServerCredentials:
    """Server TLS with our cert/key; with require_client_auth, only clients
    presenting a certificate signed by the CA get through (mTLS)."""
    files = load_tls(tls)
    return grpc.ssl_server_credentials(
        [(files.key, files.cert)],
        root_certificates=files.ca if require_client_auth else None,
        require_client_auth=require_client_auth,
    )


def channel_credentials(tls: TlsConfig, *, client_cert: bool) -> grpc.ChannelCredentials:
    """Client TLS verifying the server against the CA; with client_cert we
    also present our cert/key (needed by executors under mTLS)."""
    files = load_tls(tls)
    if client_cert:
        return grpc.ssl_channel_credentials(root_certificates=files.ca, private_key=files.key, certificate_chain=files.cert)
    return grpc.ssl_channel_credentials(root_certificates=files.ca)


def internal_tls(tls: TlsConfig) -> TlsConfig | None:
    """`tls` when calls to executors use mTLS, else None (plaintext)."""
    return tls if tls.internal else None


def admin_tls(tls: TlsConfig) -> TlsConfig | None:
    """`tls` when the dispatcher's API is served over TLS, else None."""
    return tls if tls.admin else None
