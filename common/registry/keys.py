"""The etcd key layout of discovery, in one place.

    {prefix}/executors/<group>/<executor-id>   an executor, under its lease
    {prefix}/dispatchers/<dispatcher-id>       a dispatcher, under its lease

Ids are usually host:port; ':' is fine in an etcd key, but '/' would shift
the key into another group or level of the tree, so it is refused.
"""

from __future__ import annotations

from crontrio.common.errors import ValidationError

EXECUTORS = "executors"
DISPATCHERS = "dispatchers"


def _root(prefix: str) -> str:
    # "/crontrio" and "/crontrio/" must name the same tree.
    return prefix.rstrip("/")


def _part(field: str, value: str) -> str:
    if not value:
        raise ValidationError(field, "must not be empty")
    if "/" in value:
        raise ValidationError(field, f"must not contain '/', got {value!r}")
    return value


def executors_prefix(prefix: str) -> str:
    """The prefix every executor key starts with (ends with '/')."""
    return f"{_root(prefix)}/{EXECUTORS}/"


def executor_key(prefix: str, group: str, executor_id: str) -> str:
    """`{prefix}/executors/<group>/<executor-id>`."""
    return f"{executors_prefix(prefix)}{_part('executor.group', group)}/{_part('executor.id', executor_id)}"


def dispatchers_prefix(prefix: str) -> str:
    """The prefix every dispatcher key starts with (ends with '/')."""
    return f"{_root(prefix)}/{DISPATCHERS}/"


def dispatcher_key(prefix: str, dispatcher_id: str) -> str:
    """`{prefix}/dispatchers/<dispatcher-id>`."""
    return f"{dispatchers_prefix(prefix)}{_part('dispatcher.id', dispatcher_id)}"
