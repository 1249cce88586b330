"""Wiring of the monitor."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from common.config import Config
from common.grpc_server import ServiceServer
from common.store.async_store import DbThreads
from common.store.engine import make_engine
from common.store.migrate import ensure_schema
from common.store.sql_store import SqlStore
from monitor.health_watch import HealthWatch
from monitor.http_status import StatusHttpServer
from monitor.job_watch import JobWatch

log = logging.getLogger(__name__)


async def serve(cfg: Config, stop: asyncio.Event) -> None:
    engine = make_engine(cfg.database)
    db = DbThreads(workers=2)
    await db.run(ensure_schema, engine, cfg.database)
    store = SqlStore(engine)

    job_watch = JobWatch(store, db, cfg.monitor_dispatchers, cfg.monitor.poll_interval_seconds)
    health_watch = HealthWatch(cfg.dispatcher.executors, cfg.monitor.health_interval_seconds)
    started_ms = time.time_ns() // 1_000_000

    def status() -> dict[str, Any]:
        return {
            "started_ms": started_ms,
            "job_revision": job_watch.revision,
            "dispatchers": job_watch.applied,
            "executors": {
                a: {"healthy": s.healthy, "detail": s.detail, "since_ms": s.since_ms, "checked_ms": s.checked_ms}
                for a, s in health_watch.states.items()
            },
        }

    server = ServiceServer(cfg.monitor.listen, [])
    await server.start()
    http = StatusHttpServer(cfg.monitor.http_listen, status) if cfg.monitor.http_listen else None
    if http:
        http.start()
    log.info(
        "monitor listening on %s%s; watching jobs for dispatchers %s and executors %s",
        cfg.monitor.listen,
        f" (HTTP status on {cfg.monitor.http_listen})" if http else "",
        ", ".join(cfg.monitor_dispatchers),
        ", ".join(cfg.dispatcher.executors),
    )
    tasks = [asyncio.create_task(job_watch.run(), name="job-watch"), asyncio.create_task(health_watch.run(), name="health-watch")]
    await stop.wait()
    log.info("stopping")
    await server.set_serving(False)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if http:
        http.stop()
    await server.stop(grace=1)
    db.close()
    store.close()
    log.info("monitor stopped")
