"""Watches the job change log and nudges every dispatcher when it moves."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import grpc

from crontrio.common.clock import now_ms
from crontrio.common.store.async_store import AsyncStore
from crontrio.monitor.dispatcher_links import DispatcherLinks
from crontrio.protos import crontrio_pb2 as pb

log = logging.getLogger(__name__)
# Change-log rows older than this are pruned; a dispatcher that far behind
# reloads all jobs anyway (see dispatcher/job_sync.py).
CHANGELOG_KEEP_MS = 24 * 3600 * 1000
PRUNE_EVERY_SECONDS = 600
DOWN = -2  # `applied` marker: the dispatcher did not answer


class JobWatch:
    def __init__(
        self,
        store: AsyncStore,
        links: DispatcherLinks,
        poll_seconds: float,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self._store = store
        self._links = links
        self._poll = poll_seconds
        self._on_change = on_change
        # What each dispatcher has confirmed; re-sent until it catches up.
        self.applied: dict[str, int] = {}
        self.revision = 0

    async def run(self) -> None:
        last_prune = 0.0
        while True:
            try:
                revision = await self._store.revision()
                if revision != self.revision and self._on_change is not None:
                    self._on_change(self.revision)
                self.revision = revision
                behind = [a for a in self._links.addresses() if self.applied.get(a, -1) < self.revision]
                if behind:
                    await asyncio.gather(*(self._notify(a) for a in behind))
                if time.monotonic() - last_prune > PRUNE_EVERY_SECONDS:
                    cutoff = now_ms() - CHANGELOG_KEEP_MS
                    pruned = await self._store.prune_changelog(cutoff)
                    if pruned:
                        log.info("pruned %d old job change-log entries", pruned)
                    last_prune = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - the store may be briefly unreachable
                log.warning("reading the job change log failed (will retry): %s", exc)
            await asyncio.sleep(self._poll)

    async def _notify(self, address: str) -> None:
        try:
            ack = await self._links.stub(address).NotifyJobChanges(pb.JobChangesNotice(revision=self.revision), timeout=5)
        except grpc.aio.AioRpcError as exc:
            if self.applied.get(address) != DOWN:  # log once per outage, not every poll
                log.warning("dispatcher %s did not take job changes: %s", address, exc.details())
            self.applied[address] = DOWN
            return
        self._links.answered(address, ack.dispatcher)
        if self.applied.get(address, -1) < 0:
            log.info("dispatcher %s (%s) is at job revision %d", address, ack.dispatcher, ack.revision)
        self.applied[address] = ack.revision
