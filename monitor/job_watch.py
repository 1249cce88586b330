"""Watches the job change log and nudges every dispatcher when it moves."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from common.grpc_server import insecure_channel
from common.store.async_store import DbThreads
from common.store.sql_store import SqlStore
from protos import crontrio_pb2 as pb
from protos import crontrio_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
# Change-log rows older than this are pruned; a dispatcher that far behind
# reloads all jobs anyway (see dispatcher/job_sync.py).
CHANGELOG_KEEP_MS = 24 * 3600 * 1000
PRUNE_EVERY_SECONDS = 600


class JobWatch:
    def __init__(self, store: SqlStore, db: DbThreads, dispatchers: list[str], poll_seconds: float) -> None:
        self._store = store
        self._db = db
        self._poll = poll_seconds
        self._stubs = {address: pb_grpc.ControlStub(insecure_channel(address)) for address in dispatchers}
        # What each dispatcher has confirmed; re-sent until it catches up.
        self.applied: dict[str, int] = {address: -1 for address in dispatchers}
        self.revision = 0

    async def run(self) -> None:
        last_prune = 0.0
        while True:
            try:
                self.revision = await self._db.run(self._store.revision)
                behind = [a for a, rev in self.applied.items() if rev < self.revision]
                if behind:
                    await asyncio.gather(*(self._notify(a) for a in behind))
                if time.monotonic() - last_prune > PRUNE_EVERY_SECONDS:
                    cutoff = time.time_ns() // 1_000_000 - CHANGELOG_KEEP_MS
                    pruned = await self._db.run(self._store.prune_changelog, cutoff)
                    if pruned:
                        log.info("pruned %d old job change-log entries", pruned)
                    last_prune = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - the store may be briefly unreachable
                log.warning("reading the job change log failed (will retry): %s", exc)
            await asyncio.sleep(self._poll)

    async def _notify(self, address: str) -> None:
        try:
            ack = await self._stubs[address].NotifyJobChanges(pb.JobChangesNotice(revision=self.revision), timeout=5)
        except grpc.aio.AioRpcError as exc:
            if self.applied[address] != -2:  # log once per outage, not every poll
                log.warning("dispatcher %s did not take job changes: %s", address, exc.details())
            self.applied[address] = -2
            return
        if self.applied[address] < 0 or ack.revision != self.applied[address]:
            log.info("dispatcher %s (%s) is at job revision %d", address, ack.dispatcher, ack.revision)
        self.applied[address] = ack.revision
