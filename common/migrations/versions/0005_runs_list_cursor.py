"""Index runs for the (scheduled_ms, run_id) cursor of ListRuns.

ListRuns pages newest first by (scheduled_ms, attempt, run_id), all runs or
one job's. These indexes serve both orders as plain index range scans on SQLite
too (an index there carries the rowid, not run_id, so ties within a
millisecond needed a sort). They replace the single-column ones they extend.

Revision ID: 0005_runs_list_cursor
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0005_runs_list_cursor"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_scheduled_id", "runs", ["scheduled_ms", "attempt", "run_id"])
    op.create_index("ix_runs_job_scheduled_id", "runs", ["job_id", "scheduled_ms", "attempt", "run_id"])
    op.drop_index("ix_runs_scheduled", "runs")
    op.drop_index("ix_runs_job_scheduled", "runs")


def downgrade() -> None:
    op.create_index("ix_runs_job_scheduled", "runs", ["job_id", "scheduled_ms"])
    op.create_index("ix_runs_scheduled", "runs", ["scheduled_ms"])
    op.drop_index("ix_runs_job_scheduled_id", "runs")
    op.drop_index("ix_runs_scheduled_id", "runs")
