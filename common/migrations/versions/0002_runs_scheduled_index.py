"""Index runs by scheduled time, for the monitor's missed-firing check.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_scheduled", "runs", ["scheduled_ms"])


def downgrade() -> None:
    op.drop_index("ix_runs_scheduled", "runs")
