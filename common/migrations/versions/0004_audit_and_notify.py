"""Audit log of API changes; per-job alert settings.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_JOB_COLUMNS = [
    sa.Column("notify_policy", sa.String(16), nullable=False, server_default="never"),
    sa.Column("notify_channels", sa.Text, nullable=False, server_default="[]"),
    sa.Column("notify_emails", sa.Text, nullable=False, server_default="[]"),
    sa.Column("notify_phones", sa.Text, nullable=False, server_default="[]"),
]


def upgrade() -> None:
    for column in _JOB_COLUMNS:  # plain ADD COLUMN: keeps the change-log triggers
        op.add_column("jobs", column)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("before_json", sa.Text, nullable=False),
        sa.Column("after_json", sa.Text, nullable=False),
        sqlite_autoincrement=True,
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_audit_target", "audit_log", ["target", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_target", "audit_log")
    op.drop_table("audit_log")
    for column in reversed(_JOB_COLUMNS):
        op.drop_column("jobs", column.name)
