"""Schema upgrades through alembic, run programmatically (no alembic.ini)."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from crontrio.common.config import DatabaseConfig

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class SchemaError(RuntimeError):
    """The database schema is not the one this code expects."""


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _migration_lock(db: DatabaseConfig) -> Iterator[None]:
    """Serialise migrations of one SQLite file across processes started together."""
    if db.driver != "sqlite":
        yield
        return
    lock_path = os.path.abspath(db.path) + ".migrate.lock"
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine, db: DatabaseConfig) -> tuple[str | None, str]:
    """Upgrade to the newest revision; returns (before, after)."""
    with _migration_lock(db):
        before = current_revision(engine)
        head = head_revision()
        if before != head:
            cfg = _alembic_config()
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            log.info("database schema upgraded from %s to %s", before or "empty", head)
        return before, head


def ensure_schema(engine: Engine, db: DatabaseConfig) -> None:
    """At service start: upgrade when allowed, else insist the schema is current."""
    if db.auto_migrate:
        upgrade(engine, db)
        return
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaError(
            f"database schema is at {current or 'nothing'} but this crontrio needs {head}: "
            "run `python -m crontrio.monitor migrate -c <conf.ini>` first"
        )
