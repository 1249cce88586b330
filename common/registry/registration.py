"""A service's own key in etcd, kept alive under a lease.

Executors (and dispatchers) announce themselves with one JSON value under a
lease (keys.py has the layout). etcd deletes the key when the lease is not
refreshed for `ttl` seconds, so a crashed or partitioned service drops out of
discovery by itself, and `close()` revokes the lease so a graceful stop
drops out at once.

No etcd client keeps a lease alive by itself, and none re-registers after
the lease was lost (etcd unreachable for longer than the TTL, or restarted
without it): the loop here does both, so the service never needs a restart
because etcd had a bad minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from crontrio.common.registry.etcd_client import EtcdConnection, describe

log = logging.getLogger(__name__)


class EtcdRegistration:
    """Keeps `key` = JSON(`value`) in etcd under a lease of `ttl` seconds.

    `start()` runs the keep-alive loop in the background: grant a lease, put
    the key with it, refresh the lease every ttl/3. On any failure it logs one
    warning per outage, backs off (rotating through `endpoints`), and tries
    again: the same lease while etcd still knows it, else a new lease and a
    fresh put. `registered` says whether the key is known to be in place.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        key: str,
        value: Mapping[str, Any],
        ttl: int,
        *,
        timeout: float | None = None,
        min_backoff: float = 0.1,
        max_backoff: float = 3.0,
    ) -> None:
        if ttl < 2:
            raise ValueError(f"lease ttl must be at least 2 seconds, got {ttl}")
        self._key = key
        self._value = json.dumps(dict(value), sort_keys=True, separators=(",", ":")).encode()
        self._ttl = ttl
        # A refresh that takes longer than its interval is as good as failed.
        self._conn = EtcdConnection(
            endpoints, timeout=timeout or max(1.0, ttl / 3), min_backoff=min_backoff, max_backoff=max_backoff
        )
        self._lease_id: int | None = None
        self._key_put = False
        self._registered = asyncio.Event()
        self._ever_registered = False
        self._outage_since: float | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def key(self) -> str:
        return self._key

    @property
    def registered(self) -> bool:
        """True while the key is known to be in etcd (last put or refresh succeeded)."""
        return self._registered.is_set()

    @property
    def lease_id(self) -> int | None:
        return self._lease_id

    async def start(self, wait: float | None = None) -> None:
        """Start the keep-alive loop and wait up to `wait` seconds (default: the
        TTL) for the first registration. If etcd is not reachable by then the
        service starts anyway and the loop keeps trying."""
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name=f"etcd-registration {self._key}")
        try:
            await asyncio.wait_for(self._registered.wait(), self._ttl if wait is None else wait)
        except TimeoutError:
            log.warning("%s is not registered in etcd yet; still trying in the background", self._key)

    async def close(self) -> None:
        """Stop the loop and revoke the lease: the key disappears at once."""
        await self._stop_loop()
        lease_id, self._lease_id = self._lease_id, None
        if lease_id is not None:
            await self._revoke(lease_id)
        await self._conn.close()

    async def abandon(self) -> None:
        """Stop the loop WITHOUT revoking the lease: what a crash looks like to
        etcd. The key stays until the lease expires (at most `ttl` seconds)."""
        await self._stop_loop()
        self._lease_id = None
        await self._conn.close()

    async def _stop_loop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._registered.clear()

    async def _revoke(self, lease_id: int) -> None:
        # One try per endpoint: a graceful stop must not hang on a dead etcd.
        last = ""
        for _ in range(self._conn.endpoint_count):
            try:
                await self._conn.revoke_lease(lease_id)
            except Exception as exc:  # noqa: BLE001 - any failure: try the next endpoint
                last = describe(exc)
                await self._conn.rotate()
            else:
                log.info("deregistered %s from etcd (lease %x revoked)", self._key, lease_id)
                return
        log.warning("could not revoke the lease of %s (%s); the key expires within %ds", self._key, last, self._ttl)

    async def _run(self) -> None:
        delay = 0.0  # until the next refresh
        while True:
            try:
                if self._lease_id is None or not self._key_put:
                    await self._register()
                else:
                    await asyncio.sleep(delay)
                    ttl = await self._conn.keep_alive_once(self._lease_id)
                    if ttl == 0:
                        # etcd forgot the lease (it expired while we could not
                        # reach etcd) and deleted the key with it.
                        log.warning("etcd lease %x of %s has expired; registering again", self._lease_id, self._key)
                        self._lease_id = None
                        self._registered.clear()
                        continue
                    self._lease_kept()
                delay = self._ttl / 3
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - etcd down, partition, timeout: retry
                endpoint = self._conn.endpoint
                await self._conn.failed()
                self._failed(exc, endpoint)
                await self._conn.backoff()
                delay = 0.0

    async def _register(self) -> None:
        if self._lease_id is None:
            self._lease_id = await self._conn.grant_lease(self._ttl)
            self._key_put = False
        await self._conn.put(self._key, self._value, self._lease_id)
        self._key_put = True
        first, self._ever_registered = not self._ever_registered, True
        outage = self._recovered()
        if first:
            log.info("registered %s in etcd at %s (lease %x, ttl %ds)", self._key, self._conn.endpoint, self._lease_id, self._ttl)
        else:
            log.info(
                "re-registered %s in etcd at %s with a new lease %x%s",
                self._key,
                self._conn.endpoint,
                self._lease_id,
                f" after {outage:.1f}s of etcd trouble" if outage is not None else "",
            )

    def _recovered(self) -> float | None:
        """Mark the key as in place; how long the outage that just ended lasted."""
        self._conn.succeeded()
        self._registered.set()
        since, self._outage_since = self._outage_since, None
        return None if since is None else time.monotonic() - since

    def _lease_kept(self) -> None:
        outage = self._recovered()
        if outage is not None:
            log.info(
                "registration of %s in etcd confirmed again at %s after %.1fs (lease %x survived)",
                self._key,
                self._conn.endpoint,
                outage,
                self._lease_id,
            )

    def _failed(self, exc: Exception, endpoint: str) -> None:
        if self._conn.all_failed:
            self._registered.clear()  # one bad member among several does not put the key at risk
        if not self._key_put:
            # The put may have failed because the lease is gone; a new one is cheap,
            # and an unused lease expires by itself.
            self._lease_id = None
        if not self._conn.all_failed:
            log.info("etcd at %s failed for %s (%s); trying %s", endpoint, self._key, describe(exc), self._conn.endpoint)
        elif self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning(
                "no etcd endpoint answers for %s (last %s: %s); retrying, the key expires %ds after the last refresh",
                self._key,
                endpoint,
                describe(exc),
                self._ttl,
            )
        else:
            log.debug("etcd at %s still failing for %s: %s", endpoint, self._key, describe(exc))
