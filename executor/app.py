"""Wiring of the executor service: journal, HTTP clients, runs, gRPC server.

Start: the journal is opened and runs that died with a previous executor
process are recorded as ``lost`` (their leftover processes killed) before the
server accepts any Run, so none of them can start a second time.

Shutdown (SIGTERM or SIGINT): health goes NOT_SERVING so dispatchers stop
choosing this executor, new runs are refused with UNAVAILABLE (replays and
attaches still work), running runs get ``shutdown_grace_seconds`` to finish,
the rest are killed (TERM, KILL after ``kill_grace_seconds``) so that their
results are journaled too; then the server stops and everything is closed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping

from crontrio import __version__
from crontrio.common.clock import now_ms
from crontrio.common.cluster import ClusterAuthInterceptor, executor_protects, resolve_secret
from crontrio.common.config import Config, EtcdConfig, ExecutorConfig, TlsConfig
from crontrio.common.grpc_server import ServiceServer
from crontrio.common.metrics_http import MetricsServer
from crontrio.common.registry.keys import executor_key
from crontrio.common.registry.registration import EtcdRegistration
from crontrio.common.runtime import install_stop_signals
from crontrio.common.tls import internal_tls, server_credentials
from crontrio.executor import journal_retention
from crontrio.executor.http_task import HttpClients
from crontrio.executor.journal import Journal
from crontrio.executor.runs import RunTable
from crontrio.executor.servicer import ExecutorServicer
from crontrio.executor.task_drivers import OUTPUT_DRAIN_SECONDS
from crontrio.protos import crontrio_pb2, crontrio_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = crontrio_pb2.DESCRIPTOR.services_by_name["Executor"].full_name
# Time the gRPC server gives open streams to deliver their last events.
_SERVER_STOP_GRACE_SECONDS = 2.0


class ExecutorApp:
    """One executor process: start() it, then stop() it (gracefully)."""

    def __init__(
        self,
        cfg: ExecutorConfig,
        etcd: EtcdConfig | None = None,
        executor_id: str = "",
        base_env: Mapping[str, str] | None = None,
        tls: TlsConfig | None = None,
        cluster_secret: str | None = None,
    ) -> None:
        """Every caller must hold the cluster credential (common/cluster.py):
        `tls` set ([tls] internal = true) serves mutual TLS, only clients
        with a certificate signed by the CA get in (health checks included);
        otherwise every call but health must carry `cluster_secret`."""
        if tls is None and not cluster_secret:
            raise ValueError("an executor needs mutual TLS or a cluster secret: it runs whatever it is sent")
        # First: a bad [tls] file must fail before anything is opened.
        credentials = server_credentials(tls, require_client_auth=True) if tls is not None else None
        interceptors = [ClusterAuthInterceptor(cluster_secret, executor_protects)] if tls is None and cluster_secret else []
        self.cfg = cfg
        self.etcd = etcd
        self.id = executor_id or f"{socket.gethostname()}-{cfg.listen.rpartition(':')[2]}"
        self.registration: EtcdRegistration | None = None
        self.host = socket.gethostname()
        self.journal = Journal(cfg.journal)
        self._journal_retention: asyncio.Task[None] | None = None
        # One connection pool shared by all HTTP tasks (its aiohttp session is
        # made on first use, inside the running loop).
        self.http = HttpClients(cfg.http_max_connections)
        self.runs = RunTable(cfg, self.journal, self.http, host=self.host, address=cfg.advertised, base_env=base_env)
        self.http.warmer.report = self.runs.metrics.warmed
        self.server = ServiceServer(cfg.listen, [SERVICE_NAME], credentials=credentials, interceptors=interceptors)
        crontrio_pb2_grpc.add_ExecutorServicer_to_server(ExecutorServicer(self.runs), self.server.server)
        metrics = self.runs.metrics
        self.metrics = None
        if cfg.metrics_listen:
            self.metrics = MetricsServer(cfg.metrics_listen, metrics.registry, metrics.refresh, setting="executor.metrics_listen")

    async def start(self) -> None:
        await self.journal.open()
        lost = await self.runs.recover()
        if lost:
            log.warning("%d run(s) died with the previous executor process; recorded as lost", lost)
        if self.cfg.keep_unacked_days > 0:  # 0 = keep forever
            retention = journal_retention.run(self.journal, self.cfg.keep_unacked_days)
            self._journal_retention = asyncio.create_task(retention, name="journal-retention")
        await self.server.start()
        if self.metrics is not None:
            await self.metrics.start()
        log.info(
            "executor listening on %s%s (advertised %s, group %s)",
            self.cfg.listen,
            " (mTLS)" if self.server.credentials is not None else " (callers need the cluster secret)",
            self.runs.address,
            self.cfg.group,
        )
        if self.etcd is not None and self.etcd.endpoints:
            # Registered only once it serves: a dispatcher that finds us can use us.
            self.registration = EtcdRegistration(
                self.etcd.endpoints,
                executor_key(self.etcd.prefix, self.cfg.group, self.id),
                {
                    "id": self.id,
                    "address": self.runs.address,
                    "host": self.host,
                    "group": self.cfg.group,
                    "labels": {},
                    "capacity": self.cfg.capacity,
                    "version": __version__,
                    "started_ms": now_ms(),
                },
                self.etcd.lease_ttl,
            )
            await self.registration.start()

    async def stop(self) -> None:
        grace = self.cfg.shutdown_grace_seconds
        if self.registration is not None:
            await self.registration.close()  # dispatchers stop routing to us at once
        await self.server.set_serving(False)
        self.runs.stop_accepting()
        # Runs sent ahead and not started go back to their dispatchers, which
        # send them to another executor: a restart costs no run.
        handed = self.runs.hand_back_held("executor shutting down")
        if handed:
            log.info("handed back %d run(s) held for their scheduled time", handed)
        if self.runs.running_count:
            log.info("waiting up to %.1fs for %d running run(s)", grace, self.runs.running_count)
        if not await self.runs.wait_idle(grace):
            killed = self.runs.kill_all(f"killed: executor shutting down, {grace:g}s grace exceeded")
            log.warning("killed %d run(s) still going after %.1fs", killed, grace)
            await self.runs.wait_idle(self.cfg.kill_grace_seconds + OUTPUT_DRAIN_SECONDS + 1.0)
        await self.server.stop(_SERVER_STOP_GRACE_SECONDS)
        if self.metrics is not None:
            await self.metrics.stop()
        if self.runs.unjournaled_count:
            # Their start records stay in the journal: after a restart they
            # are reported lost (never run again), not with their real result.
            log.error(
                "%d unacknowledged result(s) could not be journaled and are lost with this process", self.runs.unjournaled_count
            )
        await self.close()
        log.info("executor stopped")

    async def close(self) -> None:
        """Release the HTTP clients and the journal (also after a failed start)."""
        if self._journal_retention is not None:
            self._journal_retention.cancel()
            await asyncio.gather(self._journal_retention, return_exceptions=True)
        await self.http.aclose()
        await self.journal.close()


async def serve(cfg: Config, base_env: Mapping[str, str] | None = None) -> None:
    """Run the executor until SIGTERM/SIGINT, then shut down gracefully.
    ``base_env`` is the environment tasks start from (default: ours)."""
    stop = asyncio.Event()
    install_stop_signals(asyncio.get_running_loop(), stop.set)
    tls = internal_tls(cfg.tls)
    # Under mTLS the client certificate is the credential; otherwise the secret.
    secret = None
    if tls is None:
        secret = resolve_secret(cfg.cluster, listen=cfg.executor.listen, service="executor", mtls_hint=True)
    app = ExecutorApp(cfg.executor, cfg.etcd, cfg.executor_id, base_env, tls, secret)
    try:
        await app.start()
    except BaseException:
        await app.close()
        raise
    try:
        await stop.wait()
    finally:
        await app.stop()
