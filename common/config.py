"""conf.ini, parsed once at the edge into typed, validated dataclasses.

Every key can be overridden by an environment variable
``CRONTRIO_<SECTION>_<KEY>`` (e.g. ``CRONTRIO_DATABASE_HOST``), so several
services, or a test, can share one file and change only what differs. An
unknown section or key, or a value of the wrong kind, fails at start with
``section.key`` in the message: a typo must not silently fall back to a
default in production.
"""

from __future__ import annotations

import configparser
import dataclasses
import math
import os
import re
import socket
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crontrio.common.errors import ConfigError

ENV_PREFIX = "CRONTRIO_"
DEFAULT_CONFIG_PATH = "conf/conf.ini"


# Executors hold a run sent ahead for at most this long (executor/servicer.py).
MAX_DISPATCH_AHEAD_MS = 10_000


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
    # edit reaches the firings sent after it. 0 = send each at its time.
    dispatch_ahead_ms: int = 1000
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
    # At most this many firings wait in memory to be recorded; beyond it a
    # firing is a misfire at once, so a stuck database cannot grow memory.
    record_backlog: int = 10_000
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
    http_max_connections: int = 500

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


_TYPED_SECTIONS: dict[str, type] = {
    "database": DatabaseConfig,
    "redis": RedisConfig,
    "etcd": EtcdConfig,
    "dispatcher": DispatcherConfig,
    "executor": ExecutorConfig,
    "monitor": MonitorConfig,
    "store": StoreConfig,
    "log": LogConfig,
    "tls": TlsConfig,
    "cluster": ClusterConfig,
    "alert": AlertConfig,
    "console": ConsoleConfig,
}
_FREE_SECTIONS = ("machine", "alarm_mail_list", "tokens")


def load_config(path: str | os.PathLike[str] | None = None, env: typing.Mapping[str, str] | None = None) -> Config:
    """Read conf.ini (if present) plus CRONTRIO_* overrides into a Config.

    ``path=None`` reads conf/conf.ini when it exists and runs on defaults
    otherwise; an explicit path that does not exist is an error.
    """
    env = os.environ if env is None else env
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"), default_section="__no_defaults__")
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case for [machine] names
    source = ""
    if path is None and Path(DEFAULT_CONFIG_PATH).is_file():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        try:
            parser.read(p, encoding="utf-8")
        except configparser.Error as exc:
            raise ConfigError(f"{p}: {exc}") from exc
        source = str(p)

    for section in parser.sections():
        if section not in _TYPED_SECTIONS and section not in _FREE_SECTIONS:
            known = ", ".join(sorted([*_TYPED_SECTIONS, *_FREE_SECTIONS]))
            raise ConfigError(f"[{section}]: unknown section (known: {known})")

    values: dict[str, Any] = {}
    for section, cls in _TYPED_SECTIONS.items():
        values[section] = _load_section(section, cls, parser, env)
    values["machine"] = _load_machine(parser, env)
    values["alarm_mail_list"] = _load_free(parser, env, "alarm_mail_list")
    values["tokens"] = _load_free(parser, env, "tokens")
    cfg = Config(**values, source=source)
    _validate(cfg)
    return cfg


def _env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


def _load_section(section: str, cls: type, parser: configparser.ConfigParser, env: typing.Mapping[str, str]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    raw: dict[str, tuple[str, str]] = {}  # key -> (value, where it came from)
    if parser.has_section(section):
        for key, value in parser.items(section):
            if key not in fields:
                raise ConfigError(f"{section}.{key}: unknown key (known: {', '.join(fields)})")
            raw[key] = (value, "conf")
    for key in fields:
        name = _env_name(section, key)
        if name in env:
            raw[key] = (env[name], name)
    kwargs = {key: _coerce(f"{section}.{key}", value, hints[key], origin) for key, (value, origin) in raw.items()}
    return cls(**kwargs)


def _coerce(where: str, value: str, hint: Any, origin: str) -> Any:
    value = value.strip()
    suffix = "" if origin == "conf" else f" (from {origin})"
    if hint is str:
        return value
    if hint is bool:
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}{suffix}")
    if hint is int:
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a whole number, got {value!r}{suffix}") from None
    if hint is float:
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}{suffix}") from None
    if typing.get_origin(hint) is list or isinstance(hint, types.GenericAlias):
        return [item.strip() for item in value.split(",") if item.strip()]
    raise AssertionError(f"no coercion for {hint!r}")  # a programming error, not user input


def _load_free(parser: configparser.ConfigParser, env: typing.Mapping[str, str], section: str) -> dict[str, str]:
    out: dict[str, str] = dict(parser.items(section)) if parser.has_section(section) else {}
    prefix = f"{ENV_PREFIX}{section.upper()}_"
    for name, value in env.items():
        if name.startswith(prefix):
            out[name[len(prefix) :].lower()] = value
    return {k: v.strip() for k, v in out.items()}


def _load_machine(parser: configparser.ConfigParser, env: typing.Mapping[str, str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name, value in _load_free(parser, env, "machine").items():
        hosts = [h.strip() for h in value.split("|") if h.strip()]
        if not hosts:
            raise ConfigError(f"machine.{name}: a group needs at least one host (host1|host2)")
        groups[name] = hosts
    return groups


def port_of(address: str) -> int:
    """The port of a host:port address (IPv6 as [::1]:5920)."""
    _, _, port = address.rpartition(":")
    return int(port)


def _check_address(where: str, address: str, *, allow_empty: bool = False) -> None:
    if not address and allow_empty:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: expected host:port, got {address!r}")


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MIN_CLUSTER_SECRET_LENGTH = 16


def cluster_secret_problem(secret: str) -> str:
    """Why `secret` cannot be a cluster secret ("" if it can). It travels as
    a gRPC metadata value (printable ASCII) and must resist guessing. The
    message never contains the secret."""
    if len(secret) < MIN_CLUSTER_SECRET_LENGTH:
        return f"must be at least {MIN_CLUSTER_SECRET_LENGTH} characters (e.g. `openssl rand -base64 32`)"
    if any(not 0x21 <= ord(c) <= 0x7E for c in secret):
        return "must be printable ASCII without spaces"
    return ""


def _validate(cfg: Config) -> None:
    db = cfg.database
    if db.driver not in ("sqlite", "mysql"):
        raise ConfigError(f"database.driver: expected sqlite or mysql, got {db.driver!r}")
    if db.driver == "sqlite" and not db.path:
        raise ConfigError("database.path: required when database.driver = sqlite")
    if db.pool_size < 1:
        raise ConfigError(f"database.pool_size: must be at least 1, got {db.pool_size}")
    if cfg.etcd.lease_ttl < 2:
        raise ConfigError(f"etcd.lease_ttl: must be at least 2 seconds, got {cfg.etcd.lease_ttl}")
    for i, endpoint in enumerate(cfg.etcd.endpoints):
        _check_address(f"etcd.endpoints[{i}]", endpoint)
    _check_address("dispatcher.listen", cfg.dispatcher.listen)
    for i, address in enumerate(cfg.dispatcher.executors):
        _check_address(f"dispatcher.executors[{i}]", address)
    if cfg.dispatcher.record_batch_ms < 0:
        raise ConfigError("dispatcher.record_batch_ms: must not be negative")
    grace = cfg.dispatcher.misfire_grace_seconds
    if not 0 < grace < math.inf:
        raise ConfigError(f"dispatcher.misfire_grace_seconds: must be a positive number, got {grace}")
    if cfg.dispatcher.record_backlog < 1:
        raise ConfigError(f"dispatcher.record_backlog: must be at least 1, got {cfg.dispatcher.record_backlog}")
    if not 0 <= cfg.dispatcher.dispatch_ahead_ms <= MAX_DISPATCH_AHEAD_MS:
        ahead = cfg.dispatcher.dispatch_ahead_ms
        raise ConfigError(f"dispatcher.dispatch_ahead_ms: expected 0 to {MAX_DISPATCH_AHEAD_MS}, got {ahead}")
    for key in ("tail_followers_per_run", "tail_followers_total"):
        if getattr(cfg.dispatcher, key) < 1:
            raise ConfigError(f"dispatcher.{key}: must be at least 1, got {getattr(cfg.dispatcher, key)}")
    _check_address("dispatcher.metrics_listen", cfg.dispatcher.metrics_listen, allow_empty=True)
    _check_address("executor.listen", cfg.executor.listen)
    _check_address("executor.metrics_listen", cfg.executor.metrics_listen, allow_empty=True)
    _check_address("executor.advertise", cfg.executor.advertise, allow_empty=True)
    _check_address("dispatcher.advertise", cfg.dispatcher.advertise, allow_empty=True)
    for where, ident in (("dispatcher.id", cfg.dispatcher.id), ("executor.id", cfg.executor.id)):
        if "/" in ident or any(c.isspace() for c in ident):
            raise ConfigError(f"{where}: must not contain '/' or spaces, got {ident!r}")
    if cfg.executor.capacity < 1:
        raise ConfigError(f"executor.capacity: must be at least 1, got {cfg.executor.capacity}")
    if cfg.executor.output_limit_bytes < 1024:
        raise ConfigError(f"executor.output_limit_bytes: must be at least 1024, got {cfg.executor.output_limit_bytes}")
    if cfg.executor.kill_grace_seconds < 0:
        raise ConfigError("executor.kill_grace_seconds: must not be negative")
    if cfg.executor.http_max_connections < 0:
        raise ConfigError("executor.http_max_connections: must not be negative (0 = no limit)")
    if not cfg.executor.group:
        raise ConfigError("executor.group: must not be empty")
    for name in cfg.executor.inherit_env:
        if not _ENV_NAME.fullmatch(name):
            raise ConfigError(f"executor.inherit_env: {name!r} is not an environment variable name")
        if name.upper().startswith(ENV_PREFIX):
            raise ConfigError(
                f"executor.inherit_env: {name!r}: CRONTRIO_* variables are service settings and secrets, never passed to jobs"
            )
    if cfg.executor.keep_unacked_days < 0:
        raise ConfigError("executor.keep_unacked_days: must not be negative (0 = keep forever)")
    _validate_store(cfg.store)
    secret_problem = cluster_secret_problem(cfg.cluster.secret)
    if cfg.cluster.secret and secret_problem:
        raise ConfigError(f"cluster.secret: {secret_problem}")
    _check_address("monitor.listen", cfg.monitor.listen)
    _check_address("monitor.http_listen", cfg.monitor.http_listen, allow_empty=True)
    for i, address in enumerate(cfg.monitor.dispatchers):
        _check_address(f"monitor.dispatchers[{i}]", address)
    if cfg.dispatcher.session_ttl_seconds < 60:
        raise ConfigError(f"dispatcher.session_ttl_seconds: must be at least 60, got {cfg.dispatcher.session_ttl_seconds}")
    _check_address("console.listen", cfg.console.listen, allow_empty=True)
    for i, address in enumerate(cfg.console.dispatchers):
        _check_address(f"console.dispatchers[{i}]", address)
    if cfg.monitor.poll_interval_seconds <= 0:
        raise ConfigError("monitor.poll_interval_seconds: must be positive")
    if cfg.monitor.health_interval_seconds <= 0:
        raise ConfigError("monitor.health_interval_seconds: must be positive")
    if cfg.monitor.reconcile_interval_seconds <= 0:
        raise ConfigError("monitor.reconcile_interval_seconds: must be positive")
    if cfg.monitor.metrics_refresh_seconds <= 0:
        raise ConfigError("monitor.metrics_refresh_seconds: must be positive")
    if cfg.monitor.missed_after_seconds < 1:
        raise ConfigError("monitor.missed_after_seconds: must be at least 1")
    for name, entry in cfg.tokens.items():
        role, _, digest = entry.partition(":")
        if role not in ("admin", "operator", "viewer") or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(
                f"tokens.{name}: expected ROLE:SHA256HEX with ROLE admin, operator or viewer "
                "(make one with `cronctl token new NAME ROLE`)"
            )
    tls = cfg.tls
    if tls.admin or tls.internal:
        for key in ("ca_file", "cert_file", "key_file"):
            path = getattr(tls, key)
            if not path:
                raise ConfigError(f"tls.{key}: required when tls.admin or tls.internal is on")
            if not Path(path).is_file():
                raise ConfigError(f"tls.{key}: no such file {path!r}")
    alert = cfg.alert
    if alert.smtp_security not in ("starttls", "ssl", "none"):
        raise ConfigError(f"alert.smtp_security: expected starttls, ssl or none, got {alert.smtp_security!r}")
    if alert.webhook_format not in ("json", "slack", "dingtalk", "wecom", "feishu"):
        raise ConfigError(f"alert.webhook_format: expected json, slack, dingtalk, wecom or feishu, got {alert.webhook_format!r}")
    if alert.sms_method.upper() not in ("GET", "POST"):
        raise ConfigError(f"alert.sms_method: expected GET or POST, got {alert.sms_method!r}")
    if alert.throttle_seconds < 0 or alert.retries < 0:
        raise ConfigError("alert.throttle_seconds and alert.retries must not be negative")
    if cfg.log.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"log.level: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {cfg.log.level!r}")


def _validate_store(store: StoreConfig) -> None:
    for key in ("keep_runs_days", "keep_audit_days"):
        if getattr(store, key) < 0:
            raise ConfigError(f"store.{key}: must not be negative (0 = keep forever)")
    if store.keep_runs_per_job < 1:
        raise ConfigError(
            "store.keep_runs_per_job: must be at least 1 (misfire catch-up reads a job's newest run), "
            f"got {store.keep_runs_per_job}"
        )
    if store.prune_interval_seconds <= 0:
        raise ConfigError("store.prune_interval_seconds: must be positive")
    if store.prune_batch_rows < 1:
        raise ConfigError(f"store.prune_batch_rows: must be at least 1, got {store.prune_batch_rows}")
    if store.prune_pause_seconds < 0:
        raise ConfigError("store.prune_pause_seconds: must not be negative")
