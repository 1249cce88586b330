"""Initial schema: jobs, runs, the job change log (fed by triggers) and meta.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Epoch milliseconds, as the database computes them; used for defaults so a
# plain-SQL `INSERT INTO jobs (name, spec, command)` gets sensible values.
_NOW_MS = {
    "sqlite": "(CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))",
    "mysql": "(ROUND(UNIX_TIMESTAMP(CURRENT_TIMESTAMP(3)) * 1000))",
}


def _id_type() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    now_ms = sa.text(_NOW_MS["sqlite" if dialect == "sqlite" else "mysql"])
    op.create_table(
        "jobs",
        sa.Column("id", _id_type(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("spec", sa.String(255), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("type", sa.String(16), nullable=False, server_default="shell"),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("http_method", sa.String(8), nullable=False, server_default="GET"),
        sa.Column("http_headers", sa.Text, nullable=False, server_default="{}"),
        sa.Column("http_body", sa.Text, nullable=False, server_default=""),
        sa.Column("expected_statuses", sa.String(255), nullable=False, server_default=""),
        sa.Column("timeout_seconds", sa.Float, nullable=False, server_default="0"),
        sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("retry_interval_seconds", sa.Float, nullable=False, server_default="0"),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("target", sa.String(255), nullable=False, server_default=""),
        sa.Column("workdir", sa.String(1024), nullable=False, server_default=""),
        sa.Column("env", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created_ms", sa.BigInteger, nullable=False, server_default=now_ms),
        sa.Column("updated_ms", sa.BigInteger, nullable=False, server_default=now_ms),
        sa.UniqueConstraint("name", name="uq_jobs_name"),
        sqlite_autoincrement=True,  # never reuse a deleted job's id: run ids embed it
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("job_id", sa.BigInteger, nullable=False),
        sa.Column("job_name", sa.String(128), nullable=False),
        sa.Column("scheduled_ms", sa.BigInteger, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dispatcher", sa.String(255), nullable=False, server_default=""),
        sa.Column("executor", sa.String(255), nullable=False, server_default=""),
        sa.Column("host", sa.String(255), nullable=False, server_default=""),
        sa.Column("pid", sa.Integer, nullable=False, server_default="0"),
        sa.Column("exit_code", sa.Integer, nullable=False, server_default="0"),
        sa.Column("started_ms", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("finished_ms", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("output", sa.LargeBinary().with_variant(sa.LargeBinary(length=2**24 - 1), "mysql"), nullable=False),
        sa.Column("output_truncated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        # The durable record of "this firing ran": a second dispatcher that
        # slipped past the claim fails here instead of running it again.
        sa.UniqueConstraint("job_id", "scheduled_ms", "attempt", name="uq_runs_firing_attempt"),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_runs_job_created", "runs", ["job_id", "created_ms"])
    op.create_index("ix_runs_created", "runs", ["created_ms"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "job_changelog",
        sa.Column("seq", _id_type(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.BigInteger, nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("changed_ms", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "crontrio_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    # Triggers make every change to `jobs` visible to the monitor, including
    # ones an operator makes with plain SQL, without scanning the table.
    for when, ref in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
        name = f"jobs_changelog_{when.lower()}"
        values = f"({ref}.id, '{when.lower()}', {_NOW_MS['sqlite' if dialect == 'sqlite' else 'mysql']})"
        if dialect == "sqlite":
            op.execute(
                f"CREATE TRIGGER {name} AFTER {when} ON jobs BEGIN "
                f"INSERT INTO job_changelog (job_id, op, changed_ms) VALUES {values}; END"
            )
        else:
            op.execute(
                f"CREATE TRIGGER {name} AFTER {when} ON jobs FOR EACH ROW "
                f"INSERT INTO job_changelog (job_id, op, changed_ms) VALUES {values}"
            )


def downgrade() -> None:
    for when in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS jobs_changelog_{when}")
    op.drop_table("crontrio_meta")
    op.drop_table("job_changelog")
    op.drop_index("ix_runs_status", "runs")
    op.drop_index("ix_runs_created", "runs")
    op.drop_index("ix_runs_job_created", "runs")
    op.drop_table("runs")
    op.drop_table("jobs")
