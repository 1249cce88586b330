"""Alembic migrations for the crontrio store (SQLite and MySQL/MariaDB alike)."""
