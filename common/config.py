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
import types
import typing
from pathlib import Path
from typing import Any

from crontrio.common.config_sections import (
    MAX_DISPATCH_AHEAD_MS,
    MAX_FIRINGS_AHEAD,
    AlertConfig,
    ClusterConfig,
    Config,
    ConsoleConfig,
    DatabaseConfig,
    DispatcherConfig,
    EtcdConfig,
    ExecutorConfig,
    LogConfig,
    MonitorConfig,
    RedisConfig,
    StoreConfig,
    TlsConfig,
    port_of,
)
from crontrio.common.errors import ConfigError

# The section dataclasses live in common/config_sections.py; they are
# re-exported here because most callers import them with load_config.
__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_PREFIX",
    "MAX_DISPATCH_AHEAD_MS",
    "MAX_FIRINGS_AHEAD",
    "MIN_CLUSTER_SECRET_LENGTH",
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
    "cluster_secret_problem",
    "load_config",
    "port_of",
]

ENV_PREFIX = "CRONTRIO_"
DEFAULT_CONFIG_PATH = "conf/conf.ini"


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
    if not 1 <= cfg.dispatcher.max_firings_ahead <= MAX_FIRINGS_AHEAD:
        held = cfg.dispatcher.max_firings_ahead
        raise ConfigError(f"dispatcher.max_firings_ahead: expected 1 to {MAX_FIRINGS_AHEAD}, got {held}")
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
