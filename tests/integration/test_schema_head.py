"""A service's start checks the schema without alembic when the database is
at the head revision (common/store/migrate.py); that takes the head from the
scripts' file names, which must name it as alembic does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from crontrio.common.config import DatabaseConfig
from crontrio.common.store import migrate
from crontrio.common.store.engine import make_engine


def test_the_scripts_are_one_chain_in_the_order_of_their_file_names() -> None:
    scripts = ScriptDirectory.from_config(migrate._alembic_config())
    chain = list(reversed(list(scripts.walk_revisions())))  # oldest first
    assert [Path(s.path).name for s in chain] == sorted(p.name for p in migrate.VERSIONS_DIR.glob("[0-9]*.py"))
    assert [s.down_revision for s in chain] == [None, *(s.revision for s in chain[:-1])]
    assert migrate.newest_script() == migrate.head_revision() == chain[-1].revision


def _db(tmp_path: Path, *, auto_migrate: bool = True) -> DatabaseConfig:
    return DatabaseConfig(driver="sqlite", path=str(tmp_path / "db.sqlite"), auto_migrate=auto_migrate)


def test_a_current_schema_is_checked_without_loading_alembic(tmp_path: Path) -> None:
    cfg = _db(tmp_path, auto_migrate=False)
    migrate.upgrade(make_engine(cfg), cfg)
    probe = (
        "import sys; from crontrio.common.config import DatabaseConfig; "
        "from crontrio.common.store.engine import make_engine; from crontrio.common.store.migrate import ensure_schema; "
        f"cfg = DatabaseConfig(driver='sqlite', path={cfg.path!r}, auto_migrate=False); "
        "ensure_schema(make_engine(cfg), cfg); print('alembic' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False", result.stderr


def test_any_other_schema_still_goes_through_alembic(tmp_path: Path) -> None:
    cfg = _db(tmp_path, auto_migrate=False)
    engine = make_engine(cfg)
    with pytest.raises(migrate.SchemaError, match="at nothing"):
        migrate.ensure_schema(engine, cfg)  # empty
    migrate.upgrade(engine, cfg)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0009_timeout_action'"))
    with pytest.raises(migrate.SchemaError, match="at 0009_timeout_action"):
        migrate.ensure_schema(engine, cfg)
    with engine.begin() as conn:  # two rows (as with branches): not taken as current
        conn.execute(text(f"UPDATE alembic_version SET version_num = '{migrate.head_revision()}'"))
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0009_timeout_action')"))
    assert not migrate._known_current(engine)
    # With auto_migrate an older schema is upgraded, as before.
    auto = _db(tmp_path / "auto")
    auto_engine = make_engine(auto)
    migrate.ensure_schema(auto_engine, auto)
    assert migrate.current_revision(auto_engine) == migrate.head_revision()
    assert migrate._known_current(auto_engine)
