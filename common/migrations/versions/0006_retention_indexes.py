"""Index the audit log by time, for the monitor's retention pruning.

Runs need nothing new: pruning walks each job's runs by (job_id,
scheduled_ms), the leading columns of ix_runs_job_scheduled_id (0005) and of
uq_runs_firing_attempt (0001). The audit log had no index on at_ms, so
finding its old rows scanned the whole table on every prune pass.

Revision ID: 0006_retention_indexes
Revises: 0005_runs_list_cursor
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0006_retention_indexes"
down_revision = "0005_runs_list_cursor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_at", "audit_log", ["at_ms"])


def downgrade() -> None:
    op.drop_index("ix_audit_at", "audit_log")
