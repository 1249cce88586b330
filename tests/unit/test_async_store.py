"""AsyncStore keeps in step with the Store interface, and SqlStore implements it."""

from __future__ import annotations

import inspect
import threading

from sqlalchemy import create_engine

from crontrio.common.store.async_store import AsyncStore
from crontrio.common.store.base import Store
from crontrio.common.store.sql_store import SqlStore


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}


def test_every_store_method_is_async_with_the_same_signature() -> None:
    wanted = _methods(Store)
    assert len(wanted) > 30
    have = _methods(AsyncStore)
    for name, signature in wanted.items():
        assert name in have, f"AsyncStore lacks {name}"
        assert inspect.iscoroutinefunction(getattr(AsyncStore, name)), name
        assert have[name] == signature, f"{name}: {have[name]} != {signature}"


def test_sql_store_has_every_store_method_with_the_same_signature() -> None:
    have = _methods(SqlStore)
    for name, signature in _methods(Store).items():
        assert have.get(name) == signature, name


class _ClosingStore(SqlStore):
    closed = 0

    def close(self) -> None:
        self.closed += 1
        super().close()


async def test_a_call_runs_on_a_worker_thread_and_close_closes_the_store() -> None:
    store = _ClosingStore(create_engine("sqlite://"))
    async_store = AsyncStore(store, workers=1)
    name = await async_store.run_blocking(lambda: threading.current_thread().name)
    assert name.startswith("db") and name != threading.current_thread().name
    await async_store.close()
    assert store.closed == 1


def test_every_user_store_method_is_async_with_the_same_signature() -> None:
    from crontrio.common.store.async_users import AsyncUserStore
    from crontrio.common.store.users import UserStore

    wanted = _methods(UserStore)
    assert len(wanted) >= 10
    have = _methods(AsyncUserStore)
    for name, signature in wanted.items():
        assert name in have, f"AsyncUserStore lacks {name}"
        assert inspect.iscoroutinefunction(getattr(AsyncUserStore, name)), name
        assert have[name] == signature, f"{name}: {have[name]} != {signature}"
