"""Console users and sessions for async callers: common/store/users.py's
UserStore with every method awaitable, run on the AsyncStore's threads (the
same pool, so user lookups and run history share one cap on DB concurrency)."""

from __future__ import annotations

from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.users import SessionUser, User, UserStore


class AsyncUserStore:
    def __init__(self, users: UserStore, store: AsyncStore) -> None:
        # The blocking user store, for code already on a worker thread.
        self.blocking = users
        self._store = store

    async def count_users(self) -> int:
        return await self._store.run_blocking(self.blocking.count_users)

    async def create_user(self, name: str, role: str, password_hash: str) -> User:
        return await self._store.run_blocking(self.blocking.create_user, name, role, password_hash)

    async def get_user(self, name: str) -> User | None:
        return await self._store.run_blocking(self.blocking.get_user, name)

    async def list_users(self) -> list[User]:
        return await self._store.run_blocking(self.blocking.list_users)

    async def set_password(self, name: str, password_hash: str, keep_session: str = "") -> User | None:
        return await self._store.run_blocking(self.blocking.set_password, name, password_hash, keep_session)

    async def disable_user(self, name: str) -> User | None:
        return await self._store.run_blocking(self.blocking.disable_user, name)

    async def add_session(self, token_hash: str, user_id: int, expires_ms: int) -> None:
        await self._store.run_blocking(self.blocking.add_session, token_hash, user_id, expires_ms)

    async def session_user(self, token_hash: str, at_ms: int) -> SessionUser | None:
        return await self._store.run_blocking(self.blocking.session_user, token_hash, at_ms)

    async def end_session(self, token_hash: str) -> bool:
        return await self._store.run_blocking(self.blocking.end_session, token_hash)

    async def prune_sessions(self, at_ms: int) -> int:
        return await self._store.run_blocking(self.blocking.prune_sessions, at_ms)
