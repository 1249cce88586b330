"""The live dispatchers, watched in etcd (not a Registry: nothing is routed to them).

The dispatcher's ListDispatchers, the monitor, the console and `cronctl` list
them. Mirrored by `PrefixWatcher` (prefix_watch.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from crontrio.common.registry.keys import dispatchers_prefix
from crontrio.common.registry.prefix_watch import PrefixWatcher, address_field, json_object, text_field


@dataclass(frozen=True)
class DispatcherRef:
    """A dispatcher as the monitor sees it."""

    id: str
    address: str
    version: str = ""
    started_ms: int = field(default=0, compare=False)


def parse_dispatcher(key: str, value: bytes) -> DispatcherRef:
    data = json_object(value)
    started_ms = data.get("started_ms", 0) or 0
    if not isinstance(started_ms, int) or isinstance(started_ms, bool):
        raise TypeError(f"started_ms must be a whole number, got {started_ms!r}")
    return DispatcherRef(
        id=text_field(data, "id") or key.rsplit("/", 1)[-1],
        address=address_field(data),
        version=text_field(data, "version"),
        started_ms=started_ms,
    )


class DispatcherWatcher(PrefixWatcher[DispatcherRef]):
    """The live dispatchers, registered under `{prefix}/dispatchers/`."""

    def __init__(self, endpoints: Sequence[str], prefix: str = "/crontrio", **options: Any) -> None:
        super().__init__(endpoints, dispatchers_prefix(prefix), parse_dispatcher, kind="dispatcher", **options)
        self._live: list[DispatcherRef] = []

    def live(self) -> list[DispatcherRef]:
        return list(self._live)

    def _changed(self) -> None:
        self._live = sorted(self._items.values(), key=lambda ref: ref.id)

    def _describe(self, key: str, value: DispatcherRef) -> str:
        return f"{value.id} at {value.address}"
