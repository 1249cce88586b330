"""The static executor list of the embedded mode ([dispatcher] executors)."""

from __future__ import annotations

from crontrio.common.registry.base import ExecutorRef


class StaticRegistry:
    def __init__(self, addresses: list[str]) -> None:
        self._executors = [ExecutorRef(address=a, host=a.rpartition(":")[0]) for a in addresses]

    def live(self) -> list[ExecutorRef]:
        return list(self._executors)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None
