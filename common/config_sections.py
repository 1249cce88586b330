"""The typed, frozen dataclasses of conf.ini: one per section, their defaults
and the comments that say what each key is for, and `Config` holding them all.

Loading them from the file and the environment, and checking values across
keys, is common/config.py's; import the names from there (it re-exports them).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

__all__ = [
    "MAX_DISPATCH_AHEAD_MS",
    "MAX_FIRINGS_AHEAD",
    "AlertConfig",
    "ClusterConfig",
    "Config",
    "ConsoleConfig",
    "DatabaseConfig",
    "DispatcherConfig",
    "EtcdConfig",
    "ExecutorConfig",
    "LogConfig",
    "MonitorConfig",
    "RedisConfig",
    "StoreConfig",
    "TlsConfig",
    "port_of",
]

# Executors hold a run sent ahead for at most this long (executor/servicer.py).
MAX_DISPATCH_AHEAD_MS = 10_000
# The most firings [dispatcher] max_firings_ahead may hold ahead (memory).
MAX_FIRINGS_AHEAD = 1_000_000


@dataclass(frozen=True)
class DatabaseConfig:
    driver: str = "sqlite"  # sqlite | mysql
    path: str = "var/crontrio.db"
    host: str = "127.0.0.1"
    port: int = 3306
    username: str = "crontrio"
    password: str = ""
    database: str = "crontrio"
    charset: str = "utf8mb4"
    pool_size: int = 5
    pool_recycle_seconds: int = 3600
    # Embedded mode upgrades its own schema at start; a shared MySQL schema
    # should be upgraded deliberately with `python -m crontrio.monitor migrate`.
    auto_migrate: bool = True

    def url(self) -> str:
        """SQLAlchemy URL for this database."""
        if self.driver == "sqlite":
            return f"sqlite:///{self.path}"
        from sqlalchemy.engine import URL

        return URL.create(
            "mysql+pymysql",
            username=self.username,
            password=self.password or None,
            host=self.host,
            port=self.port,
            database=self.database,
            query={"charset": self.charset},
        ).render_as_string(hide_password=False)


@dataclass(frozen=True)
class RedisConfig:
    host: str = ""  # empty = in-process claims
    port: int = 6379
    db: int = 0
    password: str = ""


@dataclass(frozen=True)
class EtcdConfig:
    endpoints: list[str] = field(default_factory=list)  # empty = static executor list
    prefix: str = "/crontrio"
    lease_ttl: int = 10


@dataclass(frozen=True)
class DispatcherConfig:
    listen: str = "127.0.0.1:5920"
    advertise: str = ""  # address the monitor and cronctl dial; default = listen
    # Static executor list, used when [etcd] endpoints is empty.
    executors: list[str] = field(default_factory=lambda: ["127.0.0.1:5921"])
    # Identity written into every run it fires; default "<hostname>:<port>".
    id: str = ""
    # Seconds a running job gets to finish after SIGTERM before we stop anyway.
    shutdown_grace_seconds: float = 10.0
    # Run-history writes are grouped into transactions: whatever queued while
    # the previous one was written; > 0 also waits this long to fill a batch.
    record_batch_ms: int = 0
    # Firings of jobs that allow overlap (the default) are claimed, recorded
    # and sent to their executor this long before their time; the executor
    # holds each and starts it at its scheduled instant, so a burst of
    # firings costs its dispatcher work before the second, not during it
    # (bench fire_lag: p99 ~350 ms -> ~12 ms at 1,000 firings/s). A pause or
    # delete in that time cancels the held firing (it ends `skipped`); an
    # edit replaces its request (or cancels it when the new schedule no
    # longer fires then). 0 = send each at its time. A burst gets a longer
    # lead, its firings times what each costs this dispatcher, up to
    # MAX_DISPATCH_AHEAD_MS (dispatcher/scheduler.py `Scheduler.horizon`).
    dispatch_ahead_ms: int = 1000
    # The lead grows only while at most this many firings are held ahead
    # (started before their instant, which has not come): memory here and
    # on the executors. Those within dispatch_ahead_ms are always sent.
    max_firings_ahead: int = 10_000
    # With [tokens] set and [tls] admin = false, a non-loopback listen address
    # would carry bearer tokens in clear: the dispatcher refuses to start
    # unless this says the network is trusted (then it logs a warning).
    allow_plaintext_tokens: bool = False
    # Admin.TailRun followers (follow = true) of one run, and of all runs,
    # this dispatcher serves at once; beyond either, RESOURCE_EXHAUSTED. The
    # followers of a run share one stream from its executor.
    tail_followers_per_run: int = 100
    tail_followers_total: int = 1000
    # How long a console login (Admin.Login session) lasts.
    session_ttl_seconds: int = 43200
    # On a store with no users, the first dispatcher creates "admin" with a
    # random password, logs it once and writes it here (mode 0600).
    initial_password_file: str = "var/initial-admin-password"
    # A scheduled firing not recorded within this many seconds of its time
    # (the database locked, down or too slow) does not run then: its job's
    # misfire policy applies once writes keep up (README, "Misfires").
    misfire_grace_seconds: float = 10.0
    # At most this many firings are queued to be recorded; beyond it a
    # firing waits its turn, and is a misfire once past its grace (so a
    # stuck database holds at most a grace's worth of firings in memory).
    # Waiting firings are in memory either way: this bounds one write, and a
    # big one keeps a burst's records ahead of its firing work (with 10,000,
    # 60,000 of 100,000 jobs due at one second missed their grace on 2 cores).
    record_backlog: int = 100_000
    # Prometheus /metrics (README "Metrics"); empty = off.
    metrics_listen: str = "127.0.0.1:5924"

    @property
    def advertised(self) -> str:
        return self.advertise or self.listen


@dataclass(frozen=True)
class ExecutorConfig:
    listen: str = "127.0.0.1:5921"
    advertise: str = ""  # address dispatchers dial; default = listen
    id: str = ""  # registry identity; default "<hostname>-<port>"
    group: str = "default"
    capacity: int = 1000  # advertised in the registry; how many runs at once this host takes
    journal: str = "var/executor-journal.db"
    # Output kept per run (the tail): a job printing gigabytes must not
    # exhaust the executor's memory or the run history.
    output_limit_bytes: int = 65536
    # Seconds between TERM and KILL when a run times out or is killed.
    kill_grace_seconds: float = 5.0
    shutdown_grace_seconds: float = 10.0
    # Names of the executor's environment variables a task also gets, on top
    # of the clean baseline (PATH, HOME, LANG, USER, LOGNAME, SHELL, TZ; see
    # executor/task_env.py). CRONTRIO_* names are refused: they are service
    # configuration and secrets.
    inherit_env: list[str] = field(default_factory=list)
    # Finished results no dispatcher acknowledged for this long are logged
    # (WARNING, with their run ids) and dropped, so a journal whose
    # dispatchers are gone for good cannot grow forever. 0 = keep forever.
    keep_unacked_days: float = 7.0
    # Prometheus /metrics (README "Metrics"); empty = off.
    metrics_listen: str = "127.0.0.1:5925"
    # HTTP tasks' connections open at once (to one host or all); 0 = no
    # limit. Never more than half the open files limit (executor/http_task.py).
    http_max_connections: int = 2500

    @property
    def advertised(self) -> str:
        return self.advertise or self.listen


@dataclass(frozen=True)
class StoreConfig:
    """Retention of run history and the audit log; the monitor prunes."""

    # Finished runs scheduled longer ago than this are deleted; 0 = keep forever.
    keep_runs_days: float = 30.0
    # ...except the newest N runs of each job, whatever their age (at least
    # 1: a dispatcher's misfire catch-up reads a job's newest run).
    keep_runs_per_job: int = 100
    keep_audit_days: float = 180.0  # 0 = keep forever
    prune_interval_seconds: float = 3600.0
    # Rows deleted per transaction, and the pause between two, so the
    # dispatchers' writes never wait long behind a prune.
    prune_batch_rows: int = 500
    prune_pause_seconds: float = 0.05


@dataclass(frozen=True)
class MonitorConfig:
    listen: str = "127.0.0.1:5922"
    # Dispatchers to notify of job changes; default = [dispatcher] listen.
    dispatchers: list[str] = field(default_factory=list)
    # How often the job change log is read; bounds hot-load latency.
    poll_interval_seconds: float = 0.5
    health_interval_seconds: float = 2.0
    # Runs still pending/running whose dispatcher is gone are settled by the
    # monitor: their result is collected from the executor's journal.
    reconcile_interval_seconds: float = 2.0
    # A firing with no run this long after its time is recorded as missed.
    # Longer than the dispatchers' catch-up window (60 s), so a late firing
    # is never pre-empted by a "missed" row.
    missed_after_seconds: float = 90.0
    # Small HTTP status endpoint (/healthz, /status); empty = off.
    http_listen: str = "127.0.0.1:5923"
    # Bearer token (an admin one from [tokens]) the monitor sends to dispatchers
    # when they require tokens; better given as env CRONTRIO_MONITOR_TOKEN.
    token: str = ""
    # /metrics on http_listen exports per-job series (last success, next
    # fire, last status: 3+ series a job); false for very large fleets.
    per_job_metrics: bool = True
    # How often those per-job values are read from the store (two grouped
    # queries over the run table, whatever the number of jobs); scrapes in
    # between serve the cached values.
    metrics_refresh_seconds: float = 15.0


@dataclass(frozen=True)
class ConsoleConfig:
    """The web console and JSON API (console/): a client of the admin API."""

    # Served by the monitor on [monitor] http_listen beside /healthz and /status.
    enabled: bool = True
    # Where `python -m crontrio.console` listens; default = [monitor] http_listen.
    listen: str = ""
    # Dispatchers' admin API (the first live one is used); default = the live
    # ones registered in etcd when [etcd] endpoints is set, else [dispatcher] listen.
    dispatchers: list[str] = field(default_factory=list)
    # Key that signs session cookies; created (random, mode 0600) when missing.
    secret_file: str = "var/console-secret"
    # true = every write (run, pause, resume, create, edit, delete, kill) is refused.
    read_only: bool = False


@dataclass(frozen=True)
class TlsConfig:
    """TLS for the admin API and mutual TLS between dispatcher and executor.

    One CA signs every crontrio certificate; each service presents its own
    cert/key. Off by default (embedded mode on loopback).
    """

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    admin: bool = False  # dispatcher admin API over TLS (cronctl --ca)
    internal: bool = False  # mTLS dispatcher <-> executor (and monitor -> dispatcher/executor)


@dataclass(frozen=True)
class ClusterConfig:
    """The cluster credential services present to executors and to the
    dispatchers' Control service (see common/cluster.py)."""

    # Shared secret; better given as env CRONTRIO_CLUSTER_SECRET. Never logged.
    secret: str = field(default="", repr=False)
    # Read when `secret` is empty; on loopback (embedded mode) created with a
    # random secret, mode 0600, by the first service to start.
    secret_file: str = "var/cluster.secret"


@dataclass(frozen=True)
class AlertConfig:
    """Alert channels. A channel with no destination configured is off."""

    # Identical alerts within this window are sent once (a flapping job must
    # not send 500 mails an hour).
    throttle_seconds: float = 600.0
    retries: int = 3  # further tries of a failed send
    # email (SMTP)
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"  # starttls | ssl | none
    smtp_username: str = ""
    smtp_password: str = ""
    mail_from: str = "crontrio@localhost"
    # SMS through an HTTP gateway; the body template may use {phone},
    # {message}, {job}, {status}, {run_id}.
    sms_url: str = ""
    sms_method: str = "POST"
    sms_headers: str = ""  # "Name: value; Name2: value2"
    sms_body_template: str = '{"to": "{phone}", "text": "{message}"}'
    # webhook: json | slack | dingtalk | wecom | feishu
    webhook_url: str = ""
    webhook_format: str = "json"
    # Who gets the monitor's system alerts (executor down, missed firings, ...):
    # names of [alarm_mail_list] entries or addresses, and phone numbers.
    system_emails: list[str] = field(default_factory=list)
    system_phones: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"
    file: str = ""  # empty = stderr


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    etcd: EtcdConfig = field(default_factory=EtcdConfig)
    dispatcher: DispatcherConfig = field(default_factory=DispatcherConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    log: LogConfig = field(default_factory=LogConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    alert: AlertConfig = field(default_factory=AlertConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    # Admin API tokens: name = role:sha256-hex of the token (roles admin,
    # operator, viewer). None configured = the admin API stays on loopback.
    tokens: dict[str, str] = field(default_factory=dict)
    # Named host groups, as in gocron: phpgroup = 192.168.2.74|192.168.2.75
    machine: dict[str, list[str]] = field(default_factory=dict)
    # Named mail recipients for alerts.
    alarm_mail_list: dict[str, str] = field(default_factory=dict)
    source: str = ""  # the file it came from, for log lines

    @property
    def dispatcher_id(self) -> str:
        return self.dispatcher.id or f"{socket.gethostname()}:{port_of(self.dispatcher.listen)}"

    @property
    def monitor_dispatchers(self) -> list[str]:
        return self.monitor.dispatchers or [self.dispatcher.advertised]

    @property
    def console_dispatchers(self) -> list[str]:
        return self.console.dispatchers or [self.dispatcher.advertised]

    @property
    def console_listen(self) -> str:
        return self.console.listen or self.monitor.http_listen

    @property
    def executor_id(self) -> str:
        return self.executor.id or f"{socket.gethostname()}-{port_of(self.executor.listen)}"


def port_of(address: str) -> int:
    """The port of a host:port address (IPv6 as [::1]:5920)."""
    _, _, port = address.rpartition(":")
    return int(port)
