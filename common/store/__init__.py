"""The job and run store (SQLAlchemy: SQLite embedded, MySQL/MariaDB distributed)."""
