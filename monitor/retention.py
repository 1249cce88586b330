"""The monitor's retention loop: prunes run history and the audit log.

A pass at start, then one every ``[store] prune_interval_seconds``. Each delete
transaction (at most ``prune_batch_rows`` rows; common/store/retention.py)
runs on a database thread, and the loop sleeps ``prune_pause_seconds`` on the
event loop between two, so the dispatchers' writes get the database in
between and the monitor's other watches keep running.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import Engine

from crontrio.common.clock import now_ms
from crontrio.common.config import StoreConfig
from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.retention import PruneReport, RetentionPolicy, prune_steps

log = logging.getLogger(__name__)


class RetentionLoop:
    def __init__(self, engine: Engine, store: AsyncStore, cfg: StoreConfig) -> None:
        self._engine = engine
        self._store = store
        self._cfg = cfg
        self.policy = RetentionPolicy.from_config(cfg)
        self.last: PruneReport | None = None
        self.runs_pruned = 0
        self.audit_pruned = 0

    @property
    def enabled(self) -> bool:
        return self.policy.keep_runs_days > 0 or self.policy.keep_audit_days > 0

    async def pass_once(self) -> PruneReport:
        report = PruneReport()
        started = time.monotonic()
        steps = prune_steps(self._engine, self.policy, now_ms())
        while (step := await self._store.run_blocking(next, steps, None)) is not None:
            report.add(step)
            await asyncio.sleep(self._cfg.prune_pause_seconds)
        report.seconds = time.monotonic() - started
        self.last = report
        self.runs_pruned += report.runs
        self.audit_pruned += report.audit
        if report.deleted:
            log.info(
                "retention: pruned %d run(s) and %d audit entr(ies) in %.1fs (%d transaction(s) of at most %d rows)",
                report.runs,
                report.audit,
                report.seconds,
                report.transactions,
                self.policy.batch_rows,
            )
        return report

    async def run(self) -> None:
        if not self.enabled:
            log.info("retention: off (store.keep_runs_days and store.keep_audit_days are 0), history is kept forever")
            return
        while True:
            try:
                await self.pass_once()
            except Exception as exc:  # noqa: BLE001 - the store may be briefly unreachable; next pass retries
                log.warning("retention: pruning failed (will retry in %gs): %s", self._cfg.prune_interval_seconds, exc)
            await asyncio.sleep(self._cfg.prune_interval_seconds)
