"""Discovery from etcd of the live executors: the Registry of the distributed mode.

How one prefix is mirrored and kept current is `prefix_watch.py`; the live
dispatchers are watched by `dispatcher_watch.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crontrio.common.registry.base import ExecutorRef
from crontrio.common.registry.keys import executors_prefix
from crontrio.common.registry.prefix_watch import PrefixWatcher, address_field, json_object, text_field


def parse_executor(key: str, value: bytes) -> ExecutorRef:
    """An executor's registration value (see registration.py) as an ExecutorRef.

    The key is `<prefix>/executors/<group>/<id>`; the group in the value wins,
    the key's is the fallback.
    """
    data = json_object(value)
    address = address_field(data)
    key_group = key.rsplit("/", 2)[-2] if key.count("/") >= 2 else ""
    labels = data.get("labels") or {}
    if not isinstance(labels, dict):
        raise TypeError(f"labels must be an object, got {type(labels).__name__}")
    return ExecutorRef(
        address=address,
        group=text_field(data, "group") or key_group or "default",
        host=text_field(data, "host") or address.rpartition(":")[0],
        labels={str(k): str(v) for k, v in labels.items()},
    )


class EtcdRegistry(PrefixWatcher[ExecutorRef]):
    """The Registry of the distributed mode: executors registered under
    `{prefix}/executors/`. Two keys with the same address count once."""

    def __init__(self, endpoints: Sequence[str], prefix: str = "/crontrio", **options: Any) -> None:
        super().__init__(endpoints, executors_prefix(prefix), parse_executor, kind="executor", **options)
        self._live: list[ExecutorRef] = []

    def live(self) -> list[ExecutorRef]:
        return list(self._live)

    def _changed(self) -> None:
        by_address = {ref.address: ref for _, ref in sorted(self._items.items())}
        self._live = sorted(by_address.values(), key=lambda ref: ref.address)

    def _describe(self, key: str, value: ExecutorRef) -> str:
        return f"{value.address} (group {value.group}, key {key})"


ExecutorWatcher = EtcdRegistry

__all__ = ["EtcdRegistry", "ExecutorWatcher", "parse_executor"]
