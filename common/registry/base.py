"""The registry interface."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ExecutorRef:
    """An executor as dispatchers see it."""

    address: str  # host:port dispatchers dial
    group: str = "default"
    host: str = ""
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


class Registry(Protocol):
    """Knows the live executors. Implementations keep their list current in
    the background, so `live()` is a cheap read on the firing path."""

    def live(self) -> list[ExecutorRef]: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...
