"""Table definitions the store queries through (SQLAlchemy Core).

The migrations in common/migrations/ create and change these tables; this
module mirrors the newest revision. Times are epoch milliseconds (BIGINT), so
no database ever has to agree with us on time zones.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("spec", String(255), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("type", String(16), nullable=False),
    Column("command", Text, nullable=False),
    Column("http_method", String(8), nullable=False),
    Column("http_headers", Text, nullable=False),
    Column("http_body", Text, nullable=False),
    Column("expected_statuses", String(255), nullable=False),
    Column("timeout_seconds", Float, nullable=False),
    Column("retries", Integer, nullable=False),
    Column("retry_interval_seconds", Float, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("target", String(255), nullable=False),
    Column("workdir", String(1024), nullable=False),
    Column("env", Text, nullable=False),
    Column("overlap_policy", String(16), nullable=False),
    Column("misfire_policy", String(16), nullable=False),
    Column("catch_up_window_seconds", Float, nullable=False),
    Column("retry_backoff", Float, nullable=False),
    Column("retry_max_interval_seconds", Float, nullable=False),
    Column("retry_jitter", Float, nullable=False),
    Column("route_strategy", String(32), nullable=False),
    Column("run_as_user", String(64), nullable=False),
    Column("follow_redirects", Boolean, nullable=False),
    Column("skip_tls_verify", Boolean, nullable=False),
    Column("keywords", Text, nullable=False),  # JSON list
    Column("keyword_action", String(16), nullable=False),
    Column("after_jobs", Text, nullable=False),  # JSON list of {"job", "when"}
    Column("notify_policy", String(16), nullable=False),
    Column("notify_channels", Text, nullable=False),  # JSON lists
    Column("notify_emails", Text, nullable=False),
    Column("notify_phones", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("owner", String(128), nullable=False),
    Column("tags", Text, nullable=False),  # JSON list of slugs
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("job_id", BigInteger, nullable=False),
    Column("job_name", String(128), nullable=False),
    Column("scheduled_ms", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("dispatcher", String(255), nullable=False),
    Column("executor", String(255), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("exit_code", Integer, nullable=False),
    Column("started_ms", BigInteger, nullable=False),
    Column("finished_ms", BigInteger, nullable=False),
    Column("output", LargeBinary().with_variant(LargeBinary(length=2**24 - 1), "mysql"), nullable=False),
    Column("output_truncated", Boolean, nullable=False),
    Column("error", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("shard", Integer, nullable=False),
    Column("shard_total", Integer, nullable=False),
    Column("trigger", String(64), nullable=False),
)

# Written by triggers on `jobs`, so changes made with plain SQL are seen too.
job_changelog = Table(
    "job_changelog",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("job_id", BigInteger, nullable=False),
    Column("op", String(8), nullable=False),
    Column("changed_ms", BigInteger, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("target", String(255), nullable=False),
    Column("before_json", Text, nullable=False),
    Column("after_json", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)

meta = Table(
    "crontrio_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
