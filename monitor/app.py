"""Wiring of the monitor."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from crontrio.common.alerts.sender import AlertSender
from crontrio.common.clock import now_ms
from crontrio.common.cluster import resolve_secret
from crontrio.common.config import Config
from crontrio.common.grpc_server import ServiceServer
from crontrio.common.registry.dispatcher_watch import DispatcherWatcher
from crontrio.common.registry.factory import make_registry
from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.engine import make_engine
from crontrio.common.store.migrate import ensure_schema
from crontrio.common.store.sql_store import SqlStore
from crontrio.common.tls import admin_tls, internal_tls
from crontrio.monitor.dispatcher_links import DispatcherLinks
from crontrio.monitor.health_watch import HealthWatch
from crontrio.monitor.http_status import StatusHttpServer
from crontrio.monitor.job_watch import JobWatch
from crontrio.monitor.metrics import JobStats, MonitorMetrics
from crontrio.monitor.missed import MissedDetector
from crontrio.monitor.reconcile import Reconciler
from crontrio.monitor.retention import RetentionLoop
from crontrio.monitor.system_alerts import SystemAlerts

log = logging.getLogger(__name__)


async def serve(cfg: Config, stop: asyncio.Event) -> None:
    # Presented to executors and to the dispatchers' Control service.
    cluster_secret = resolve_secret(cfg.cluster, listen=cfg.monitor.listen, service="monitor")
    engine = make_engine(cfg.database)
    sql_store = SqlStore(engine)
    store = AsyncStore(sql_store, workers=2)
    await store.run_blocking(ensure_schema, engine, cfg.database)

    registry = make_registry(cfg.etcd, cfg.dispatcher.executors)
    await registry.start()
    watcher: DispatcherWatcher | None = None
    if cfg.etcd.endpoints:
        watcher = DispatcherWatcher(cfg.etcd.endpoints, cfg.etcd.prefix)
        await watcher.start()
        dispatchers_watcher = watcher

        def discovered() -> dict[str, str] | None:
            if not dispatchers_watcher.synced:
                return None
            return {d.id: d.address for d in dispatchers_watcher.live()}

        links = DispatcherLinks([], discovered, tls=admin_tls(cfg.tls), token=cfg.monitor.token, cluster_secret=cluster_secret)
    else:
        links = DispatcherLinks(
            cfg.monitor_dispatchers, tls=admin_tls(cfg.tls), token=cfg.monitor.token, cluster_secret=cluster_secret
        )

    job_watch = JobWatch(store, links, cfg.monitor.poll_interval_seconds)
    health_watch = HealthWatch(registry, links, cfg.monitor.health_interval_seconds, tls=internal_tls(cfg.tls))
    reconciler = Reconciler(store, links, registry, tls=internal_tls(cfg.tls), cluster_secret=cluster_secret)
    missed = MissedDetector(store, cfg.monitor.missed_after_seconds)
    alerts = AlertSender(cfg.alert, cfg.alarm_mail_list)
    await alerts.start()
    health_watch.alerts = alerts
    missed.alerts = alerts
    system = SystemAlerts(alerts, store, links)
    retention = RetentionLoop(engine, store, cfg.store)
    started_ms = now_ms()

    def status() -> dict[str, Any]:
        return {
            "started_ms": started_ms,
            "job_revision": job_watch.revision,
            "dispatchers": {a: {"applied_revision": job_watch.applied.get(a)} for a in links.addresses()},
            "executors": {
                a: {"healthy": s.healthy, "detail": s.detail, "since_ms": s.since_ms, "checked_ms": s.checked_ms}
                for a, s in health_watch.states.items()
            },
            "runs_reconciled": reconciler.settled,
            "firings_missed": missed.recorded,
            "alerts": alerts.stats(),
            "pruned": {"runs": retention.runs_pruned, "audit": retention.audit_pruned},
        }

    server = ServiceServer(cfg.monitor.listen, [])
    await server.start()
    metrics = MonitorMetrics(
        executors_up=lambda: sum(1 for s in health_watch.states.values() if s.healthy),
        dispatchers_up=lambda: len(links.live_addresses()),
        firings_missed=lambda: missed.recorded,
        stats=JobStats(sql_store) if cfg.monitor.per_job_metrics else None,
        store=store,
        refresh_seconds=cfg.monitor.metrics_refresh_seconds,
    )
    http = StatusHttpServer(cfg, status, metrics) if cfg.monitor.http_listen else None
    if http:
        await http.start()
    log.info(
        "monitor listening on %s%s; dispatchers from %s, executors from %s",
        cfg.monitor.listen,
        f" (HTTP status on {cfg.monitor.http_listen})" if http else "",
        "etcd" if watcher else ", ".join(cfg.monitor_dispatchers),
        "etcd" if cfg.etcd.endpoints else ", ".join(cfg.dispatcher.executors),
    )
    if http and cfg.console.enabled:
        log.info("web console on http://%s/ (first login: admin, password in the dispatcher's log)", cfg.monitor.http_listen)
    tasks = [
        asyncio.create_task(system.run(cfg.monitor.reconcile_interval_seconds), name="system-alerts"),
        asyncio.create_task(job_watch.run(), name="job-watch"),
        asyncio.create_task(health_watch.run(), name="health-watch"),
        asyncio.create_task(reconciler.run(cfg.monitor.reconcile_interval_seconds), name="reconcile"),
        asyncio.create_task(missed.run(cfg.monitor.reconcile_interval_seconds), name="missed"),
        asyncio.create_task(retention.run(), name="retention"),
    ]
    await stop.wait()
    log.info("stopping")
    await server.set_serving(False)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await alerts.close(5.0)
    if http:
        await http.stop()
    await server.stop(grace=1)
    if watcher is not None:
        await watcher.close()
    await registry.close()
    await store.close()
    log.info("monitor stopped")
