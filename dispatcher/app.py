"""Wiring of the dispatcher: store, claims, registry, scheduler, gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from common.claims.memory import MemoryClaims
from common.config import Config
from common.grpc_server import ServiceServer
from common.registry.static import StaticRegistry
from common.store.async_store import DbThreads
from common.store.engine import make_engine
from common.store.migrate import ensure_schema
from common.store.sql_store import SqlStore
from dispatcher.admin_servicer import AdminServicer, ControlServicer
from dispatcher.executor_client import ExecutorClients
from dispatcher.firing import FiringRunner
from dispatcher.job_sync import JobSync
from dispatcher.recorder import RunRecorder
from dispatcher.schedule import Schedule
from dispatcher.scheduler import Scheduler, wall_ms
from protos import crontrio_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
# The monitor nudges on every change; this is only the safety net.
JOB_SYNC_FALLBACK_SECONDS = 30.0


async def serve(cfg: Config, stop: asyncio.Event) -> None:
    """Run the dispatcher until `stop` is set, then shut down gracefully."""
    dispatcher_id = cfg.dispatcher_id
    engine = make_engine(cfg.database)
    db = DbThreads()
    await db.run(ensure_schema, engine, cfg.database)
    store = SqlStore(engine)

    claims = MemoryClaims()
    registry = StaticRegistry(cfg.dispatcher.executors)
    await registry.start()
    clients = ExecutorClients()
    recorder = RunRecorder(store, db, cfg.dispatcher.record_batch_ms)
    recorder.start()

    schedule = Schedule()
    runner = FiringRunner(dispatcher_id, claims, recorder, registry, clients)
    scheduler = Scheduler(schedule, runner.fire)
    job_sync = JobSync(store, db, schedule, scheduler.wake, wall_ms)
    await job_sync.load_all()

    server = ServiceServer(cfg.dispatcher.listen, ["crontrio.v1.Admin", "crontrio.v1.Control"])
    pb_grpc.add_AdminServicer_to_server(AdminServicer(store, db, schedule, job_sync), server.server)
    pb_grpc.add_ControlServicer_to_server(ControlServicer(job_sync, dispatcher_id), server.server)
    await server.start()
    log.info(
        "dispatcher %s listening on %s (database %s, executors %s)",
        dispatcher_id,
        cfg.dispatcher.listen,
        cfg.database.driver,
        ", ".join(cfg.dispatcher.executors) or "none",
    )

    loop_task = asyncio.create_task(scheduler.run(), name="scheduler")
    sync_task = asyncio.create_task(job_sync.fallback_loop(JOB_SYNC_FALLBACK_SECONDS), name="job-sync")
    stop_wait = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({loop_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    if loop_task in done and loop_task.exception() is not None:
        log.critical("scheduler loop died: %r", loop_task.exception())

    # Graceful stop: no new firings, say NOT_SERVING, let running ones finish.
    log.info("stopping: %d firings in flight", len(scheduler.in_flight))
    scheduler.stop()
    await server.set_serving(False)
    sync_task.cancel()
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
    await recorder.close()
    await clients.close()
    await registry.close()
    await claims.close()
    db.close()
    store.close()
    log.info("dispatcher stopped")
