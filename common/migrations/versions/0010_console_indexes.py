"""Index runs and jobs for the console's list pages at a million runs.

ListRuns filtered by status or by job name walked ix_runs_scheduled_id from
the newest run and read every row to test the filter: a full scan whenever
the filter matches few runs (runs in progress, one job's runs by name), about
5 s on SQLite at 1,000,000 runs. These indexes lead with the filter and then
carry the cursor's (scheduled_ms, attempt, run_id), so a page is an index
range scan of its own length. The status one replaces ix_runs_status (0001),
its leading column.

ListJobs' name search is `name LIKE 'prefix%'`, case-insensitive on both
databases. MariaDB answers it from the unique index on name; SQLite uses an
index for LIKE only when it is NOCASE, so SQLite gets one (an expression index
would mean nothing to MariaDB, whose collation already ignores case).

Revision ID: 0010_console_indexes
Revises: 0009_timeout_action
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_console_indexes"
down_revision = "0009_timeout_action"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_status_scheduled_id", "runs", ["status", "scheduled_ms", "attempt", "run_id"])
    op.create_index("ix_runs_name_scheduled_id", "runs", ["job_name", "scheduled_ms", "attempt", "run_id"])
    op.drop_index("ix_runs_status", "runs")
    if op.get_bind().dialect.name == "sqlite":
        op.create_index("ix_jobs_name_nocase", "jobs", [sa.text("name COLLATE NOCASE")])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_jobs_name_nocase", "jobs")
    op.create_index("ix_runs_status", "runs", ["status"])
    op.drop_index("ix_runs_name_scheduled_id", "runs")
    op.drop_index("ix_runs_status_scheduled_id", "runs")
