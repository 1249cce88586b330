"""Which Registry a dispatcher uses: the static list, or etcd when configured."""

from __future__ import annotations

from crontrio.common.config import EtcdConfig
from crontrio.common.registry.base import Registry
from crontrio.common.registry.static import StaticRegistry


def make_registry(etcd: EtcdConfig, static_executors: list[str]) -> Registry:
    """StaticRegistry of `static_executors` when [etcd] endpoints is empty
    (embedded mode), else an EtcdRegistry watching `{prefix}/executors/`."""
    if not etcd.endpoints:
        return StaticRegistry(static_executors)
    # Imported here: the etcd client library is of no use to an embedded dispatcher.
    from crontrio.common.registry.etcd_registry import EtcdRegistry

    return EtcdRegistry(etcd.endpoints, etcd.prefix)
