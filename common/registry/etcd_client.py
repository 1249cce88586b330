"""One etcd connection out of several endpoints, replaced on failure.

aetcd (the maintained asyncio successor of python-etcd3) talks to a single
host:port and neither rotates endpoints, nor resumes watches, nor keeps
leases alive. `EtcdConnection` adds the first part: it hands out an
`aetcd.Client` for the current endpoint, and when its owner reports a
failure it drops that client, moves to the next endpoint and sleeps a
backoff once every endpoint has failed in a row. The loops that keep a
lease alive (registration.py) and a watch running (etcd_registry.py) are
built on it.

The watch itself is a raw etcd Watch stream on the client's gRPC channel
(aetcd's own stubs), not `Client.watch_prefix`: aetcd's watcher never tells
its consumer when the server ends the stream without an error status, and
drops progress notifications and cancel reasons, so a watch could go silent
forever. Here every way the stream can end is an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aetcd  # type: ignore[import-untyped]
import grpc
from aetcd.utils import prefix_range_end  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

# gRPC channel options for every etcd client.
CHANNEL_OPTIONS: dict[str, int] = {
    # Notice a dead peer (a half-open TCP connection after a partition) even on
    # a quiet watch stream. etcd refuses pings more often than every 5 s
    # (--grpc-keepalive-min-time), so stay above that.
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    # A failed client is replaced anyway; a channel that is kept must not sit
    # in gRPC's reconnect backoff, which grows to two minutes.
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 2_000,
}


class RevisionCompactedError(Exception):
    """The revision a watch should resume from is gone; resync from a fresh read."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted (oldest kept: {compact_revision})")
        self.compact_revision = compact_revision


class WatchEndedError(Exception):
    """etcd ended or cancelled a watch stream; resume it."""


@dataclass(frozen=True)
class WatchEvent:
    kind: str  # "put" | "delete"
    key: str
    value: bytes
    mod_revision: int


@dataclass(frozen=True)
class WatchBatch:
    """One watch response: events, or only progress.

    `revision` is the store revision the stream has caught up to: every later
    event has a higher one, so a resumed watch starts at `revision + 1`.
    """

    revision: int
    events: list[WatchEvent] = field(default_factory=list)
    # The reply that confirms the watch: `revision` is then the store's current
    # revision, not progress (older events may still follow), and `cluster_id`
    # tells whether this is still the same etcd cluster.
    created: bool = False
    cluster_id: int = 0


@dataclass(frozen=True)
class Snapshot:
    """Every key under a prefix at one store revision."""

    revision: int
    cluster_id: int
    kvs: list[WatchEvent]


def describe(exc: BaseException) -> str:
    """A short, log-friendly account of an etcd failure."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


def _split_endpoint(endpoint: str) -> tuple[str, int]:
    host, sep, port = endpoint.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"etcd endpoint must be host:port, got {endpoint!r}")
    return host, int(port)


class EtcdConnection:
    """A client for one of `endpoints`, moved to the next one on failure.

    Owners call `client()` before each operation, `succeeded()` after one
    worked, and `failed()` then `backoff()` after one did not: `failed()`
    closes the client and rotates to the next endpoint, `backoff()` sleeps
    nothing while untried endpoints remain in this round, then an exponential
    backoff with jitter. `all_failed` tells a bad member (another endpoint may
    work) from an outage. One connection serves one loop, not several tasks.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = 5.0,
        min_backoff: float = 0.1,
        max_backoff: float = 3.0,
    ) -> None:
        if not endpoints:
            raise ValueError("etcd needs at least one endpoint")
        self._endpoints = [_split_endpoint(e) for e in endpoints]
        self._timeout = timeout
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._index = 0
        self._failures = 0  # consecutive, over all endpoints
        self._client: Any = None

    @property
    def endpoint(self) -> str:
        """The endpoint in use (or next to be tried)."""
        host, port = self._endpoints[self._index]
        return f"{host}:{port}"

    @property
    def endpoint_count(self) -> int:
        return len(self._endpoints)

    async def client(self) -> Any:
        """The `aetcd.Client` of the current endpoint (created on first use)."""
        if self._client is None:
            host, port = self._endpoints[self._index]
            client = aetcd.Client(host=host, port=port, timeout=self._timeout, options=CHANNEL_OPTIONS)
            await client.connect()  # builds the channel and stubs; no network round trip
            self._client = client
        return self._client

    def succeeded(self) -> None:
        self._failures = 0

    @property
    def all_failed(self) -> bool:
        """Every endpoint has failed since the last success: an outage, not a bad member."""
        return self._failures >= len(self._endpoints)

    async def failed(self) -> None:
        """Drop the client and move to the next endpoint; call `backoff()` next."""
        await self.rotate()
        self._failures += 1

    async def backoff(self) -> None:
        """Sleep before the next try: not at all while untried endpoints remain in
        this round, then exponentially longer (with jitter) per failed round."""
        if not self.all_failed:
            return
        rounds = self._failures // len(self._endpoints) - 1
        delay = min(self._max_backoff, self._min_backoff * 2**rounds)
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def rotate(self) -> None:
        """Drop the client and move to the next endpoint, without backing off."""
        await self._drop_client()
        self._index = (self._index + 1) % len(self._endpoints)

    async def close(self) -> None:
        await self._drop_client()

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # Closing a channel to a dead server must not hold up recovery.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), self._timeout)

    # Typed wrappers of the few aetcd calls discovery needs. Errors propagate:
    # the owner's loop decides between retrying and giving up.

    async def get_prefix(self, prefix: str) -> Snapshot:
        """Every key under `prefix` (as "put" events) and the revision read at."""
        reply = await (await self.client()).get_prefix(prefix.encode())
        kvs = [
            WatchEvent(kind="put", key=kv.key.decode(errors="replace"), value=kv.value, mod_revision=kv.mod_revision)
            for kv in reply
        ]
        return Snapshot(revision=int(reply.header.revision), cluster_id=int(reply.header.cluster_id), kvs=kvs)

    async def grant_lease(self, ttl: int) -> int:
        """A new lease of `ttl` seconds; its id."""
        lease = await (await self.client()).lease(ttl)
        return int(lease.id)

    async def put(self, key: str, value: bytes, lease_id: int = 0) -> int:
        """Put `key`, attached to `lease_id` (0: none); the new store revision."""
        reply = await (await self.client()).put(key.encode(), value, lease=lease_id)
        return int(reply.header.revision)

    async def keep_alive_once(self, lease_id: int) -> int:
        """Refresh a lease; its new TTL in seconds, 0 if etcd no longer knows it.

        etcd answers a keep-alive for an expired or unknown lease with TTL 0,
        not with an error, so the 0 must be checked.
        """
        reply = await (await self.client()).refresh_lease(lease_id)
        return 0 if reply is None else max(0, int(reply.TTL))

    async def revoke_lease(self, lease_id: int) -> None:
        """Revoke a lease, deleting its keys at once. An unknown lease is not an error."""
        try:
            await (await self.client()).revoke_lease(lease_id)
        except aetcd.ClientError as exc:
            # NOT_FOUND is not in aetcd's code map: it arrives as a plain ClientError.
            if "lease not found" not in str(exc):
                raise

    async def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[WatchBatch]:
        """Watch keys under `prefix` from `start_revision` on (inclusive).

        Yields a `created` batch once etcd confirmed the watch, then a batch
        per watch response, and runs until it raises:
        `RevisionCompactedError` when `start_revision` is compacted away,
        `WatchEndedError` when etcd ends or cancels the stream, or the gRPC error
        of a broken connection. Cancelling the consumer ends the stream.
        """
        client = await self.client()
        key = prefix.encode()
        create = aetcd.rpc.WatchCreateRequest(
            key=key, range_end=prefix_range_end(key), start_revision=start_revision, progress_notify=True
        )
        call = aetcd.rpc.WatchStub(client.channel).Watch(metadata=client.metadata)
        try:
            await call.write(aetcd.rpc.WatchRequest(create_request=create))
            # Until etcd confirms the watch, a silent server is a failure, not a quiet prefix.
            response = await asyncio.wait_for(call.read(), self._timeout)
            while True:
                if response is grpc.aio.EOF:
                    raise WatchEndedError("etcd closed the watch stream")
                if response.compact_revision:
                    raise RevisionCompactedError(response.compact_revision)
                if response.canceled:
                    raise WatchEndedError(f"etcd cancelled the watch: {response.cancel_reason or 'no reason given'}")
                if response.created:
                    yield WatchBatch(revision=response.header.revision, created=True, cluster_id=response.header.cluster_id)
                else:
                    events = [
                        WatchEvent(
                            kind="delete" if ev.type == aetcd.rpc.Event.DELETE else "put",
                            key=ev.kv.key.decode(errors="replace"),
                            value=ev.kv.value,
                            mod_revision=ev.kv.mod_revision,
                        )
                        for ev in response.events
                    ]
                    revision = max([response.header.revision, *(e.mod_revision for e in events)])
                    yield WatchBatch(revision=revision, events=events)
                response = await call.read()
        finally:
            call.cancel()
