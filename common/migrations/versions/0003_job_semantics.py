"""Job semantics: overlap, misfire, retry backoff, routing, run-as user, HTTP
options, keywords, dependencies; runs get shard, shard_total and trigger.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_JOB_COLUMNS = [
    sa.Column("overlap_policy", sa.String(16), nullable=False, server_default="allow"),
    sa.Column("misfire_policy", sa.String(16), nullable=False, server_default="skip"),
    sa.Column("catch_up_window_seconds", sa.Float, nullable=False, server_default="3600"),
    sa.Column("retry_backoff", sa.Float, nullable=False, server_default="1"),
    sa.Column("retry_max_interval_seconds", sa.Float, nullable=False, server_default="0"),
    sa.Column("retry_jitter", sa.Float, nullable=False, server_default="0"),
    sa.Column("route_strategy", sa.String(32), nullable=False, server_default="round_robin"),
    sa.Column("run_as_user", sa.String(64), nullable=False, server_default=""),
    sa.Column("follow_redirects", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("skip_tls_verify", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("keywords", sa.Text, nullable=False, server_default="[]"),
    sa.Column("keyword_action", sa.String(16), nullable=False, server_default="fail"),
    sa.Column("after_jobs", sa.Text, nullable=False, server_default="[]"),
]


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy) on `jobs`: a SQLite batch rebuild would
    # drop the change-log triggers.
    for column in _JOB_COLUMNS:
        op.add_column("jobs", column)
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("shard", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("shard_total", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("trigger", sa.String(64), nullable=False, server_default="schedule"))
        batch.drop_constraint("uq_runs_firing_attempt", type_="unique")
        batch.create_unique_constraint("uq_runs_firing_attempt", ["job_id", "scheduled_ms", "attempt", "shard"])
    # Overlap checks ("is a run of this job still going?") and catch-up
    # ("when did this job last fire?") stay index lookups however long the history.
    op.create_index("ix_runs_job_status", "runs", ["job_id", "status"])
    op.create_index("ix_runs_job_scheduled", "runs", ["job_id", "scheduled_ms"])


def downgrade() -> None:
    op.drop_index("ix_runs_job_scheduled", "runs")
    op.drop_index("ix_runs_job_status", "runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("uq_runs_firing_attempt", type_="unique")
        batch.create_unique_constraint("uq_runs_firing_attempt", ["job_id", "scheduled_ms", "attempt"])
        batch.drop_column("trigger")
        batch.drop_column("shard_total")
        batch.drop_column("shard")
    for column in reversed(_JOB_COLUMNS):
        op.drop_column("jobs", column.name)
