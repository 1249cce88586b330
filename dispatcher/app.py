"""Wiring of the dispatcher: store, claims, registry, scheduler, gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from crontrio import __version__
from crontrio.common.alerts.sender import AlertSender
from crontrio.common.auth import admin_listen_address, check_plaintext_tokens, server_interceptors
from crontrio.common.claims.base import Claims
from crontrio.common.claims.factory import make_claims
from crontrio.common.clock import now_ms
from crontrio.common.cluster import ClusterAuthInterceptor, control_protects, resolve_secret
from crontrio.common.config import Config
from crontrio.common.grpc_server import ServiceServer
from crontrio.common.metrics_http import MetricsServer
from crontrio.common.model import Job
from crontrio.common.registry.base import Registry
from crontrio.common.registry.factory import make_registry
from crontrio.common.registry.keys import dispatcher_key
from crontrio.common.schedule import Schedule
from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.async_users import AsyncUserStore
from crontrio.common.store.engine import make_engine
from crontrio.common.store.migrate import ensure_schema
from crontrio.common.store.sql_store import SqlStore
from crontrio.common.store.users import UserStore
from crontrio.common.tls import internal_tls, server_credentials
from crontrio.dispatcher.admin_servicer import AdminServicer, ControlServicer
from crontrio.dispatcher.ahead_cost import AheadCost
from crontrio.dispatcher.catch_up import catch_up
from crontrio.dispatcher.executor_client import ExecutorClients
from crontrio.dispatcher.firing import FiringHooks, FiringRunner
from crontrio.dispatcher.job_sync import JobSync
from crontrio.dispatcher.metrics import DispatcherMetrics
from crontrio.dispatcher.misfire import MisfireTracker
from crontrio.dispatcher.notify import RunNotifier
from crontrio.dispatcher.overlap import OverlapGate
from crontrio.dispatcher.peers import PeerLiveness
from crontrio.dispatcher.recorder import RunRecorder
from crontrio.dispatcher.run_records import RunRecords
from crontrio.dispatcher.scheduler import BatchFiring, Scheduler, TaskSpawner
from crontrio.dispatcher.tail_hub import TailHub
from crontrio.dispatcher.takeover import TakeoverWatch
from crontrio.dispatcher.users import SessionAuth, ensure_initial_admin
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    # The etcd side (and its client library) is imported where [etcd] is
    # configured: an embedded dispatcher never loads it.
    from crontrio.common.registry.dispatcher_watch import DispatcherWatcher
    from crontrio.common.registry.registration import EtcdRegistration

log = logging.getLogger(__name__)
# The monitor nudges on every change; this is only the safety net.
JOB_SYNC_FALLBACK_SECONDS = 30.0


class DispatcherApp:
    """The parts that fire jobs, wired through their constructors: one task
    spawner for all of them, and each one's hooks given when it is built.
    Where two parts call each other (the scheduler fires through the runner,
    the runner asks the job sync, the job sync wakes the scheduler), the
    hook is a method of this app that forwards to the part built later."""

    def __init__(
        self,
        cfg: Config,
        dispatcher_id: str,
        store: AsyncStore,
        claims: Claims,
        registry: Registry,
        clients: ExecutorClients,
        recorder: RunRecorder,
        alerts: AlertSender,
    ) -> None:
        self.spawner = TaskSpawner()
        self.schedule = Schedule()
        self.metrics = DispatcherMetrics()
        recorder.metrics = self.metrics
        # Set once the peers are watched (serve): firings another dispatcher
        # claimed before then (during catch-up) are not followed.
        self.takeover: TakeoverWatch | None = None
        self.job_sync = JobSync(
            store, self.schedule, self._wake, now_ms, on_unscheduled=self._unscheduled, on_edited=self._edited
        )
        # What a firing sent ahead costs here: how far ahead a burst is started.
        ahead_cost = AheadCost()
        self.misfires = MisfireTracker(
            store,
            recorder,
            dispatcher_id,
            cfg.dispatcher.misfire_grace_seconds,
            run_firing=self._run_firing,
            spawn=self.spawner.spawn,
            current_job=self.job_sync.jobs.get,
        )
        notifier = RunNotifier(alerts, store)
        hooks = FiringHooks(
            spawn=self.spawner.spawn,
            downstream_of=self.job_sync.downstream_of,
            still_scheduled=self.job_sync.jobs.__contains__,
            after_firing=notifier.after_firing,
            on_overrun=notifier.overran,
            on_claimed_elsewhere=self._claimed_elsewhere,
            sent_ahead=ahead_cost.prepared,
        )
        # Every run record this dispatcher writes is built by `records`.
        records = RunRecords(dispatcher_id)
        overlap = OverlapGate(store, recorder, clients, records)
        self.runner = FiringRunner(
            records,
            claims,
            recorder,
            registry,
            clients,
            cfg.machine,
            overlap,
            hooks=hooks,
            misfires=self.misfires,
            metrics=self.metrics,
        )
        self.scheduler = Scheduler(
            self.schedule,
            self.runner.fire,
            dispatch_ahead_ms=cfg.dispatcher.dispatch_ahead_ms,
            spawner=self.spawner,
            batch=BatchFiring(self.runner.claim, self.runner.fire_claimed),
            max_firings_ahead=cfg.dispatcher.max_firings_ahead,
            ahead_cost=ahead_cost,
        )

    def _wake(self) -> None:
        self.scheduler.wake()

    def _unscheduled(self, job_id: int, reason: str) -> None:
        self.runner.job_unscheduled(job_id, reason)

    def _edited(self, job: Job, fires_at: Callable[[int], bool]) -> None:
        self.runner.job_edited(job, fires_at)

    async def _run_firing(
        self, job: Job, scheduled_ms: int, trigger: str, first_attempt: int = 1, recorded: bool = False
    ) -> None:
        await self.runner.run_firing(job, scheduled_ms, trigger, first_attempt, recorded)

    def _claimed_elsewhere(self, job: Job, scheduled_ms: int) -> None:
        if self.takeover is not None:
            self.takeover.watch(job, scheduled_ms)


async def serve(cfg: Config, stop: asyncio.Event) -> None:
    """Run the dispatcher until `stop` is set, then shut down gracefully."""
    # Who may call it, decided first: a refusal must come before any work.
    # Without tokens the API is unauthenticated: loopback only (see common/auth.py).
    listen = admin_listen_address(cfg.dispatcher.listen, cfg.tokens)
    check_plaintext_tokens(listen, cfg.tokens, tls_admin=cfg.tls.admin, allowed=cfg.dispatcher.allow_plaintext_tokens)
    # The Control service (and calls to executors) use the cluster credential.
    cluster_secret = resolve_secret(cfg.cluster, listen=listen, service="dispatcher")
    # Per boot: a restarted dispatcher is a new instance, so the monitor can
    # tell the runs its previous life left behind from the ones it tracks.
    dispatcher_id = f"{cfg.dispatcher_id}@{now_ms():x}"
    engine = make_engine(cfg.database)
    store = AsyncStore(SqlStore(engine))
    await store.run_blocking(ensure_schema, engine, cfg.database)
    users = AsyncUserStore(UserStore(engine), store)
    await store.run_blocking(ensure_initial_admin, users.blocking, cfg.dispatcher.initial_password_file)

    claims = make_claims(cfg.redis)
    registry = make_registry(cfg.etcd, cfg.dispatcher.executors)
    await registry.start()
    clients = ExecutorClients(internal_tls(cfg.tls), cluster_secret=cluster_secret)
    recorder = RunRecorder(store, cfg.dispatcher.record_batch_ms, cfg.dispatcher.record_backlog)
    recorder.start()

    alerts = AlertSender(cfg.alert, cfg.alarm_mail_list)
    app = DispatcherApp(cfg, dispatcher_id, store, claims, registry, clients, recorder, alerts)
    schedule, scheduler, runner, job_sync, misfires, metrics = (
        app.schedule,
        app.scheduler,
        app.runner,
        app.job_sync,
        app.misfires,
        app.metrics,
    )
    metrics.count_scheduled(schedule.__len__)
    metrics_server = None
    if cfg.dispatcher.metrics_listen:
        metrics_server = MetricsServer(cfg.dispatcher.metrics_listen, metrics.registry, setting="dispatcher.metrics_listen")
    if metrics_server is not None:
        await metrics_server.start()  # before catch-up, so its firings are counted and seen
    await alerts.start()
    await job_sync.load_all()
    caught_up = await catch_up(job_sync.jobs.values(), store, recorder, runner.fire, app.spawner.spawn, dispatcher_id)
    if caught_up:
        log.info("misfire catch-up: %d missed firings started", caught_up)

    server = ServiceServer(
        listen,
        ["crontrio.v1.Admin", "crontrio.v1.Control"],
        credentials=server_credentials(cfg.tls, require_client_auth=False) if cfg.tls.admin else None,
        interceptors=[
            ClusterAuthInterceptor(cluster_secret, control_protects),
            *server_interceptors(cfg.tokens, SessionAuth(users)),
        ],
    )
    started_ms = now_ms()
    watcher: DispatcherWatcher | None = None
    if cfg.etcd.endpoints:
        from crontrio.common.registry.dispatcher_watch import DispatcherWatcher  # etcd mode only

        watcher = DispatcherWatcher(cfg.etcd.endpoints, cfg.etcd.prefix)
        await watcher.start()

    def dispatchers() -> list[pb.DispatcherInfo]:
        if watcher is None:
            return [
                pb.DispatcherInfo(id=dispatcher_id, address=cfg.dispatcher.advertised, version=__version__, started_ms=started_ms)
            ]
        return [pb.DispatcherInfo(id=d.id, address=d.address, version=d.version, started_ms=d.started_ms) for d in watcher.live()]

    # Peers that die between recording a run and sending it: adopt their runs.
    peers = PeerLiveness(
        (lambda: {d.id: d.address for d in watcher.live()}) if watcher is not None else (lambda: None),
        cfg.tls if cfg.tls.admin else None,
    )
    takeover = TakeoverWatch(
        store,
        runner.fire_claimed,
        app.spawner.spawn,
        dispatcher_id=dispatcher_id,
        alive=peers.alive if watcher is not None else None,
        adopt=runner.adopt,
    )
    app.takeover = takeover
    if watcher is not None:
        runner.live_dispatchers = lambda: [d.id for d in watcher.live()]

    tail = TailHub(
        store,
        clients,
        per_run=cfg.dispatcher.tail_followers_per_run,
        total=cfg.dispatcher.tail_followers_total,
    )
    admin = AdminServicer(
        store,
        users,
        schedule,
        job_sync,
        runner,
        app.spawner.spawn,
        clients,
        registry,
        dispatchers,
        tail,
        session_ttl_seconds=cfg.dispatcher.session_ttl_seconds,
    )
    pb_grpc.add_AdminServicer_to_server(admin, server.server)
    control = ControlServicer(job_sync, dispatcher_id, runner, store, app.spawner.spawn)
    pb_grpc.add_ControlServicer_to_server(control, server.server)
    await server.start()
    # Registered once it serves, so whoever finds it in etcd can call it.
    registration: EtcdRegistration | None = None
    if cfg.etcd.endpoints:
        from crontrio.common.registry.registration import EtcdRegistration  # etcd mode only

        registration = EtcdRegistration(
            cfg.etcd.endpoints,
            dispatcher_key(cfg.etcd.prefix, dispatcher_id),
            {"id": dispatcher_id, "address": cfg.dispatcher.advertised, "version": __version__, "started_ms": started_ms},
            cfg.etcd.lease_ttl,
        )
        await registration.start()
    claims_desc = f"redis {cfg.redis.host}:{cfg.redis.port}" if cfg.redis.host else "in-process"
    executors_desc = f"etcd {','.join(cfg.etcd.endpoints)}" if cfg.etcd.endpoints else ", ".join(cfg.dispatcher.executors)
    log.info(
        "dispatcher %s listening on %s (database %s, claims %s, executors %s)",
        dispatcher_id,
        listen + (" (TLS)" if cfg.tls.admin else ""),
        cfg.database.driver,
        claims_desc,
        executors_desc or "none",
    )

    loop_task = asyncio.create_task(scheduler.run(), name="scheduler")
    sync_task = asyncio.create_task(job_sync.fallback_loop(JOB_SYNC_FALLBACK_SECONDS), name="job-sync")
    takeover_task = asyncio.create_task(takeover.run(), name="takeover")
    misfire_task = asyncio.create_task(misfires.run(), name="misfires")
    stop_wait = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({loop_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    if loop_task in done and loop_task.exception() is not None:
        log.critical("scheduler loop died: %r", loop_task.exception())

    # Graceful stop: no new firings, say NOT_SERVING, let running ones finish.
    log.info("stopping: %d firings in flight", len(scheduler.in_flight))
    scheduler.stop()
    await server.set_serving(False)
    if registration is not None:
        await registration.close()  # the monitor and cronctl stop choosing us at once
    sync_task.cancel()
    takeover_task.cancel()
    misfire_task.cancel()
    stop_wait.cancel()
    if scheduler.in_flight:
        _, pending = await asyncio.wait(scheduler.in_flight, timeout=cfg.dispatcher.shutdown_grace_seconds)
        if pending:
            log.warning(
                "%d runs still going after %.0fs; leaving them to their executors (results stay in their journals)",
                len(pending),
                cfg.dispatcher.shutdown_grace_seconds,
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    with contextlib.suppress(asyncio.CancelledError):
        await loop_task
    await server.stop(grace=2)
    if metrics_server is not None:
        await metrics_server.stop()
    await tail.close()
    await recorder.close()
    await alerts.close(5.0)
    if watcher is not None:
        await watcher.close()
    await clients.close()
    await registry.close()
    await claims.close()
    await store.close()
    log.info("dispatcher stopped")
