"""Channels to crontrio services: the client side of gRPC, for services and clients alike.

The dispatcher, the monitor, the console and `cronctl` all reach a service
this way; none of them needs the server module (grpc_server.py) for it.
"""

from __future__ import annotations

from typing import Any

import grpc

from crontrio.common.auth import BearerTokenInterceptor
from crontrio.common.cluster import cluster_secret_interceptors
from crontrio.common.config import TlsConfig
from crontrio.common.tls import channel_credentials

# Keepalives notice a dead peer in seconds instead of at the TCP timeout; the
# message limit leaves room for a 64 KiB output tail many times over.
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    # After a failed connect, gRPC fails every call at once with that error
    # until its reconnect back-off (1 s, then x1.6) has passed. When an
    # executor dies, the first connect can end in a reset rather than a
    # refusal; a second of cached resets then hides the refusal that proves
    # its runs sent ahead never started (dispatcher/connect_errors.py), and
    # they end unreachable instead of moving. Probe again soon, and never
    # leave a peer unprobed for more than a few seconds. (Not
    # grpc.min_reconnect_backoff_ms: gRPC also takes it as the connect
    # timeout, and 100 ms of that failed slow but live peers.)
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5_000),
]


def make_channel(
    address: str, tls: TlsConfig | None, *, client_cert: bool, token: str = "", cluster_secret: str | None = None
) -> grpc.aio.Channel:
    """A channel to another crontrio service: plaintext when `tls` is None,
    else TLS verified against the CA (presenting our cert/key if
    `client_cert`). A `token` is sent as a bearer token on every call, a
    `cluster_secret` as the cluster credential (common/cluster.py)."""
    chain: list[Any] = []
    if token:
        chain.append(BearerTokenInterceptor(token))
    if cluster_secret:
        chain.extend(cluster_secret_interceptors(cluster_secret))
    interceptors = chain or None
    if tls is None:
        return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS, interceptors=interceptors)
    credentials = channel_credentials(tls, client_cert=client_cert)
    return grpc.aio.secure_channel(address, credentials, options=CHANNEL_OPTIONS, interceptors=interceptors)
