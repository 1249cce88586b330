"""Mirror one etcd prefix into memory, kept current: the base of discovery.

Each service's key lives under a lease (registration.py), so the set of keys
under a prefix *is* the set of live services. `PrefixWatcher` mirrors one
prefix into memory: it reads the whole prefix once, notes the revision, and
then applies the watch's puts and deletes. When the watch breaks (etcd down,
restarted, partitioned, or the stream ended) it reconnects, rotating through
the endpoints with backoff, and resumes from the last revision seen + 1, so
no change in between is lost. If that revision has been compacted away, or
etcd is no longer the same cluster, it reads the whole prefix again.

`live()` only reads memory: it sits on the firing path. The watchers built on
it: `etcd_registry.EtcdRegistry` (executors, the Registry) and
`dispatcher_watch.DispatcherWatcher` (dispatchers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from crontrio.common.registry.etcd_client import EtcdConnection, RevisionCompactedError, WatchEvent, describe

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a parse function may raise for a value it cannot use.
MALFORMED = (ValueError, TypeError, KeyError)


class _ResyncError(Exception):
    """The resume point is no longer valid: read the whole prefix again."""


class PrefixWatcher(Generic[T]):
    """Every key under `prefix`, parsed by `parse(key, value)` and kept current.

    A value `parse` rejects (ValueError, TypeError, KeyError) is logged and
    ignored, never fatal. `full_syncs` and `resumes` count whole-prefix reads
    and resumed watches, for status pages and tests.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        prefix: str,
        parse: Callable[[str, bytes], T],
        *,
        kind: str = "entry",
        timeout: float = 5.0,
        min_backoff: float = 0.1,
        max_backoff: float = 3.0,
    ) -> None:
        self._conn = EtcdConnection(endpoints, timeout=timeout, min_backoff=min_backoff, max_backoff=max_backoff)
        self._prefix = prefix
        self._parse = parse
        self._kind = kind
        self._items: dict[str, T] = {}
        self._revision = 0  # every change up to this store revision is in _items
        self._cluster_id = 0
        self._need_full_sync = True
        self._fresh_read = False
        self._synced = asyncio.Event()
        self._watching = False
        self._outage_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.full_syncs = 0
        self.resumes = 0

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def revision(self) -> int:
        """The store revision the in-memory view is current to."""
        return self._revision

    @property
    def synced(self) -> bool:
        """Whether the prefix has been read at least once."""
        return self._synced.is_set()

    @property
    def watching(self) -> bool:
        """Whether the watch stream is up right now (else the view may be stale)."""
        return self._watching

    def items(self) -> dict[str, T]:
        """Key -> parsed value, a copy."""
        return dict(self._items)

    async def start(self, wait: float = 5.0) -> None:
        """Start watching and wait up to `wait` seconds for the first read of
        the prefix. If etcd does not answer by then the service starts anyway
        (with an empty view) and the watcher keeps trying in the background."""
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name=f"etcd-watch {self._prefix}")
        try:
            await asyncio.wait_for(self._synced.wait(), wait)
        except TimeoutError:
            log.warning("no %s list from etcd after %.0fs; starting empty, still trying in the background", self._kind, wait)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watching = False
        await self._conn.close()

    # -- the loop ---------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                if self._need_full_sync:
                    await self._full_sync()
                await self._watch()
            except asyncio.CancelledError:
                raise
            except (RevisionCompactedError, _ResyncError) as exc:
                # etcd is fine; only our resume point is not. No backoff.
                log.warning(
                    "%s watch on %s cannot resume from revision %d (%s); reading the prefix again",
                    self._kind,
                    self._prefix,
                    self._revision + 1,
                    exc,
                )
                self._watching = False
                self._need_full_sync = True
            except Exception as exc:  # noqa: BLE001 - etcd down, restarted, partitioned: resume
                self._watching = False
                endpoint = self._conn.endpoint
                await self._conn.failed()
                self._failed(exc, endpoint)
                await self._conn.backoff()

    async def _full_sync(self) -> None:
        snapshot = await self._conn.get_prefix(self._prefix)
        fresh: dict[str, T] = {}
        for kv in snapshot.kvs:
            value = self._parse_or_log(kv)
            if value is not None:
                fresh[kv.key] = value
        for key in self._items.keys() - fresh.keys():
            log.info("%s disappeared: %s", self._kind, self._describe(key, self._items[key]))
        for key, value in fresh.items():
            if key not in self._items:
                log.info("%s appeared: %s", self._kind, self._describe(key, value))
            elif self._items[key] != value:
                log.info("%s changed: %s", self._kind, self._describe(key, value))
        self._items = fresh
        self._revision = snapshot.revision
        self._cluster_id = snapshot.cluster_id
        self._need_full_sync = False
        self._fresh_read = True
        self.full_syncs += 1
        self._changed()
        self._synced.set()
        log.debug("read %d %s(s) under %s at revision %d", len(fresh), self._kind, self._prefix, snapshot.revision)

    async def _watch(self) -> None:
        # A watch that does not start right after a full read resumes an older one.
        resumed, self._fresh_read = not self._fresh_read, False
        async for batch in self._conn.watch_prefix(self._prefix, self._revision + 1):
            if batch.created:
                if batch.cluster_id != self._cluster_id or batch.revision < self._revision:
                    # Restored from a backup or a new cluster: revisions mean something else now.
                    raise _ResyncError(f"etcd cluster or revision changed: {batch.cluster_id:x} at {batch.revision}")
                self._watching = True
                self._conn.succeeded()
                self._recovered(resumed)
                continue
            if batch.events:
                for event in batch.events:
                    self._apply(event)
                self._changed()
            self._revision = max(self._revision, batch.revision)

    def _apply(self, event: WatchEvent) -> None:
        if event.kind == "delete":
            gone = self._items.pop(event.key, None)
            if gone is not None:
                log.info("%s disappeared: %s", self._kind, self._describe(event.key, gone))
            return
        value = self._parse_or_log(event)
        old = self._items.get(event.key)
        if value is None:
            # Overwritten with something unusable: the old value is stale, drop it.
            if self._items.pop(event.key, None) is not None:
                log.info("%s disappeared (malformed update): %s", self._kind, event.key)
            return
        self._items[event.key] = value
        if old is None:
            log.info("%s appeared: %s", self._kind, self._describe(event.key, value))
        elif old != value:
            log.info("%s changed: %s", self._kind, self._describe(event.key, value))

    def _parse_or_log(self, kv: WatchEvent) -> T | None:
        try:
            return self._parse(kv.key, kv.value)
        except MALFORMED as exc:
            log.warning(
                "ignoring malformed %s at %s (revision %d): %s: %.200r", self._kind, kv.key, kv.mod_revision, exc, kv.value
            )
            return None

    def _recovered(self, resumed: bool) -> None:
        since, self._outage_since = self._outage_since, None
        if resumed:
            self.resumes += 1
        if since is not None:
            log.info(
                "%s watch on %s back at %s after %.1fs, from revision %d",
                self._kind,
                self._prefix,
                self._conn.endpoint,
                time.monotonic() - since,
                self._revision + 1,
            )

    def _failed(self, exc: Exception, endpoint: str) -> None:
        if not self._conn.all_failed:
            log.info("%s watch: etcd at %s failed (%s); trying %s", self._kind, endpoint, describe(exc), self._conn.endpoint)
        elif self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning(
                "%s watch on %s lost: no etcd endpoint answers (last %s: %s); keeping the last known %d %s(s), retrying",
                self._kind,
                self._prefix,
                endpoint,
                describe(exc),
                len(self._items),
                self._kind,
            )
        else:
            log.debug("%s watch on %s: etcd at %s: %s", self._kind, self._prefix, endpoint, describe(exc))

    # -- hooks for the watchers built on it (etcd_registry, dispatcher_watch) --

    def _changed(self) -> None:
        """Called after the view changed; subclasses rebuild what they serve."""

    def _describe(self, key: str, value: T) -> str:
        return key


# -- registration values (JSON objects, see registration.py) -----------------


def json_object(value: bytes) -> dict[str, Any]:
    data = json.loads(value)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def text_field(data: dict[str, Any], name: str, default: str = "") -> str:
    value = data.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    return value


def address_field(data: dict[str, Any]) -> str:
    address = text_field(data, "address")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"address must be host:port, got {address!r}")
    return address
