"""Job metadata: description, owner and tags, and an index to list by owner.

Tags are a JSON list in a TEXT column like the job's other lists; ListJobs
finds a tag with LIKE on that text while walking the jobs in id order (tags
are slugs: no quote or comma can fake a match), which pages through 100,000
jobs without a second table to keep in step with plain-SQL writes.

Revision ID: 0008_job_meta
Revises: 0007_users
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_job_meta"
down_revision = "0007_users"
branch_labels = None
depends_on = None

_JOB_COLUMNS = [
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("owner", sa.String(128), nullable=False, server_default=""),
    sa.Column("tags", sa.Text, nullable=False, server_default="[]"),  # JSON list of slugs
]


def upgrade() -> None:
    for column in _JOB_COLUMNS:  # plain ADD COLUMN: keeps the change-log triggers
        op.add_column("jobs", column)
    op.create_index("ix_jobs_owner", "jobs", ["owner", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_owner", "jobs")
    for column in reversed(_JOB_COLUMNS):
        op.drop_column("jobs", column.name)
