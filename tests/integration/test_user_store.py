"""Users and sessions in the store, on SQLite and a real MariaDB (migration 0007_users)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crontrio.common.config import DatabaseConfig
from crontrio.common.passwords import hash_password, verify_password
from crontrio.common.store.engine import make_engine
from crontrio.common.store.migrate import ensure_schema
from crontrio.common.store.users import UserExistsError, UserStore
from crontrio.dispatcher.users import ensure_initial_admin


@pytest.fixture(params=["sqlite", "mariadb"])
def users(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UserStore]:
    if request.param == "sqlite":
        cfg = DatabaseConfig(driver="sqlite", path=str(tmp_path / "store.db"))
    else:
        cfg = request.getfixturevalue("mariadb_config")
    engine = make_engine(cfg)
    ensure_schema(engine, cfg)
    yield UserStore(engine)
    engine.dispose()


def test_users_and_sessions(users: UserStore) -> None:
    ann = users.create_user("ann", "operator", hash_password("ann-password"))
    with pytest.raises(UserExistsError):
        users.create_user("ann", "viewer", "x")
    assert [u.name for u in users.list_users()] == ["ann"] and users.count_users() == 1
    users.add_session("a" * 64, ann.id, expires_ms=2_000)
    users.add_session("b" * 64, ann.id, expires_ms=2_000)
    found = users.session_user("a" * 64, at_ms=1_000)
    assert found is not None and (found.name, found.role, found.expires_ms) == ("ann", "operator", 2_000)
    assert users.session_user("a" * 64, at_ms=2_000) is None  # expired
    assert users.session_user("c" * 64, at_ms=1_000) is None
    # A new password ends every other session.
    changed = users.set_password("ann", hash_password("new-password"), keep_session="a" * 64)
    assert changed is not None and verify_password("new-password", changed.password_hash)
    assert users.session_user("a" * 64, 1_000) is not None and users.session_user("b" * 64, 1_000) is None
    assert users.end_session("a" * 64) and not users.end_session("a" * 64)
    users.add_session("d" * 64, ann.id, expires_ms=5_000)
    disabled = users.disable_user("ann")
    assert disabled is not None and disabled.disabled and users.session_user("d" * 64, 1_000) is None
    assert users.disable_user("nobody") is None and users.set_password("nobody", "x") is None
    users.add_session("e" * 64, ann.id, expires_ms=10)
    assert users.prune_sessions(at_ms=100) == 1


def test_first_admin_only_on_an_empty_store(users: UserStore, tmp_path: Path) -> None:
    path = tmp_path / "var" / "initial-admin-password"
    password = ensure_initial_admin(users, str(path))
    assert password and path.read_text().strip() == password
    admin = users.get_user("admin")
    assert admin is not None and admin.role == "admin" and verify_password(password, admin.password_hash)
    assert ensure_initial_admin(users, str(tmp_path / "again")) is None and not (tmp_path / "again").exists()
