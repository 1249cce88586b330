"""Timeout handling: a job's timeout_action (kill | alert) and a run's overrun_ms.

timeout_action "alert" keeps a run going past its timeout; the run is then
marked once (overrun_ms, by a conditional update) and the job's alert sent.
Existing jobs keep killing ("kill", the old behaviour); existing runs never
overran (0).

Revision ID: 0009_timeout_action
Revises: 0008_job_meta
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_timeout_action"
down_revision = "0008_job_meta"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN with a default: keeps the jobs change-log triggers and
    # fills every existing row without a table rewrite on MariaDB.
    op.add_column("jobs", sa.Column("timeout_action", sa.String(16), nullable=False, server_default="kill"))
    op.add_column("runs", sa.Column("overrun_ms", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("runs", "overrun_ms")
    op.drop_column("jobs", "timeout_action")
