"""Alembic environment: always driven programmatically by common.store.migrate,
which hands us an open connection (no alembic.ini, no URL in a file)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
