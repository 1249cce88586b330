"""Schema upgrades through alembic, run programmatically (no alembic.ini).

Alembic is imported only when a schema is not known to be current: at a
service's start on an up-to-date database (the usual case) a plain query
says so, and the ~80 ms of alembic's import (its dialects, mako, pygments)
are spared.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from crontrio.common.config import DatabaseConfig

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
VERSIONS_DIR = MIGRATIONS_DIR / "versions"
_REVISION_RE = re.compile(r"""^revision\b[^=\n]*=\s*["']([^"']+)["']""", re.MULTILINE)  # annotated too


class SchemaError(RuntimeError):
    """The database schema is not the one this code expects."""


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def newest_script() -> str | None:
    """The head revision without alembic: the `revision = "..."` line of the
    last script by file name. The migrations are one chain whose file names
    are numbered in its order (tests/integration/test_schema_head.py holds
    them to that, against alembic's own head_revision())."""
    newest = max(VERSIONS_DIR.glob("[0-9]*.py"), default=None)
    match = _REVISION_RE.search(newest.read_text(encoding="utf-8")) if newest is not None else None
    return match.group(1) if match else None


def _known_current(engine: Engine) -> bool:
    """True when the database certainly stands at the head revision (one
    alembic_version row naming it); False for anything else (no such table,
    another revision, several rows), which alembic then decides."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:  # no table yet (an empty database), or not readable: alembic's path says which
        return False
    head = newest_script()
    return head is not None and len(rows) == 1 and rows[0][0] == head


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
            from alembic import command

            cfg = _alembic_config()
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            log.info("database schema upgraded from %s to %s", before or "empty", head)
        return before, head


def ensure_schema(engine: Engine, db: DatabaseConfig) -> None:
    """At service start: upgrade when allowed, else insist the schema is current."""
    if _known_current(engine):
        return  # nothing to upgrade, nothing to refuse: what either path below ends with
    if db.auto_migrate:
        upgrade(engine, db)
        return
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaError(
            f"database schema is at {current or 'nothing'} but this crontrio needs {head}: "
            "run `python -m crontrio.monitor migrate -c <conf.ini>` first"
        )
