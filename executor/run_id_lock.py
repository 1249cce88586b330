"""One asyncio lock per run id, alive only while someone holds or awaits
it: what makes a repeated Run or an Attach of the same run id decide one at
a time (executor/runs.py)."""

from __future__ import annotations

import asyncio


class RunIdLock:
    """``async with`` one run id's decision lock (executor/runs.py RunTable._deciding_on): a
    plain class, not an asynccontextmanager, whose generator and wrapper
    cost more than the (nearly always uncontended) lock itself, once per
    run of a burst. The lock lives in ``locks`` while anyone uses it."""

    __slots__ = ("_lock", "_locks", "_run_id")

    def __init__(self, locks: dict[str, tuple[asyncio.Lock, int]], run_id: str) -> None:
        self._locks = locks
        self._run_id = run_id

    async def __aenter__(self) -> None:
        lock, users = self._locks.get(self._run_id) or (asyncio.Lock(), 0)
        self._locks[self._run_id] = (lock, users + 1)
        self._lock = lock
        try:
            await lock.acquire()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()
        self._leave()

    def _leave(self) -> None:
        lock, users = self._locks[self._run_id]
        if users == 1:
            del self._locks[self._run_id]
        else:
            self._locks[self._run_id] = (lock, users - 1)
