"""Console users and their sessions in the SQL store (SQLite or MySQL/MariaDB).

Sessions are stored by the sha256 of their token only, so reading the table
grants nobody a session. Methods are blocking: async callers use common/store/async_users.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from crontrio.common.clock import now_ms
from crontrio.common.store.schema import sessions, users


class UserExistsError(Exception):
    """A user with that name already exists."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    password_hash: str
    disabled: bool
    created_ms: int
    updated_ms: int


@dataclass(frozen=True)
class SessionUser:
    """A live session's user, as the auth interceptor needs it."""

    name: str
    role: str
    expires_ms: int


def _user(row: Any) -> User:
    return User(
        id=int(row["id"]),
        name=row["name"],
        role=row["role"],
        password_hash=row["password_hash"],
        disabled=bool(row["disabled"]),
        created_ms=int(row["created_ms"]),
        updated_ms=int(row["updated_ms"]),
    )


class UserStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def count_users(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(users)).scalar() or 0)

    def create_user(self, name: str, role: str, password_hash: str) -> User:
        ts = now_ms()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(users).values(
                        name=name, role=role, password_hash=password_hash, disabled=False, created_ms=ts, updated_ms=ts
                    )
                )
                row = conn.execute(select(users).where(users.c.name == name)).mappings().one()
        except IntegrityError as exc:
            raise UserExistsError(name) from exc
        return _user(row)

    def get_user(self, name: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).mappings().first()
        return _user(row) if row is not None else None

    def list_users(self) -> list[User]:
        with self.engine.connect() as conn:
            return [_user(r) for r in conn.execute(select(users).order_by(users.c.name)).mappings().all()]

    def set_password(self, name: str, password_hash: str, keep_session: str = "") -> User | None:
        """New hash; every session of the user ends except `keep_session` (a token hash)."""
        with self.engine.begin() as conn:
            changed = update(users).where(users.c.name == name).values(password_hash=password_hash, updated_ms=now_ms())
            if conn.execute(changed).rowcount == 0:
                return None
            row = conn.execute(select(users).where(users.c.name == name)).mappings().one()
            conn.execute(delete(sessions).where(sessions.c.user_id == row["id"], sessions.c.token_hash != keep_session))
        return _user(row)

    def disable_user(self, name: str) -> User | None:
        """Disabled, and every session of the user ended, in one transaction."""
        with self.engine.begin() as conn:
            if conn.execute(update(users).where(users.c.name == name).values(disabled=True, updated_ms=now_ms())).rowcount == 0:
                return None
            row = conn.execute(select(users).where(users.c.name == name)).mappings().one()
            conn.execute(delete(sessions).where(sessions.c.user_id == row["id"]))
        return _user(row)

    # ---------------------------------------------------------- sessions

    def add_session(self, token_hash: str, user_id: int, expires_ms: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(sessions).values(token_hash=token_hash, user_id=user_id, created_ms=now_ms(), expires_ms=expires_ms)
            )

    def session_user(self, token_hash: str, at_ms: int) -> SessionUser | None:
        """The user of a live session (not expired, user not disabled), or None."""
        query = (
            select(users.c.name, users.c.role, sessions.c.expires_ms)
            .select_from(sessions.join(users, users.c.id == sessions.c.user_id))
            .where(sessions.c.token_hash == token_hash, sessions.c.expires_ms > at_ms, users.c.disabled.is_(False))
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return SessionUser(row["name"], row["role"], int(row["expires_ms"])) if row is not None else None

    def end_session(self, token_hash: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash)).rowcount)

    def prune_sessions(self, at_ms: int) -> int:
        """Delete expired sessions (they are refused anyway; this keeps the table small)."""
        with self.engine.begin() as conn:
            return int(conn.execute(delete(sessions).where(sessions.c.expires_ms <= at_ms)).rowcount or 0)
