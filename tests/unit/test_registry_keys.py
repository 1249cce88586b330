"""The etcd key layout, the parsing of registered values, and the registry factory."""

from __future__ import annotations

import json

import pytest

from crontrio.common.config import EtcdConfig
from crontrio.common.errors import ValidationError
from crontrio.common.registry.base import ExecutorRef
from crontrio.common.registry.dispatcher_watch import DispatcherRef, parse_dispatcher
from crontrio.common.registry.etcd_registry import EtcdRegistry, parse_executor
from crontrio.common.registry.factory import make_registry
from crontrio.common.registry.keys import dispatcher_key, dispatchers_prefix, executor_key, executors_prefix
from crontrio.common.registry.static import StaticRegistry


def test_layout() -> None:
    assert executors_prefix("/crontrio") == "/crontrio/executors/"
    assert executor_key("/crontrio", "php", "10.0.0.1:5921") == "/crontrio/executors/php/10.0.0.1:5921"
    assert dispatchers_prefix("/crontrio") == "/crontrio/dispatchers/"
    assert dispatcher_key("/crontrio", "host-a:5920") == "/crontrio/dispatchers/host-a:5920"


def test_trailing_slash_in_prefix_names_the_same_tree() -> None:
    assert executor_key("/crontrio/", "g", "e") == executor_key("/crontrio", "g", "e")
    assert dispatchers_prefix("/x/") == "/x/dispatchers/"


def test_keys_live_under_their_prefix() -> None:
    assert executor_key("/c", "g", "e").startswith(executors_prefix("/c"))
    assert dispatcher_key("/c", "d").startswith(dispatchers_prefix("/c"))
    # An executor group called "dispatchers" must not land among the dispatchers.
    assert not executor_key("/c", "dispatchers", "e").startswith(dispatchers_prefix("/c"))


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: executor_key("/c", "g", "a/b"), "executor.id"),
        (lambda: executor_key("/c", "a/b", "e"), "executor.group"),
        (lambda: executor_key("/c", "g", ""), "executor.id"),
        (lambda: executor_key("/c", "", "e"), "executor.group"),
        (lambda: dispatcher_key("/c", "x/y"), "dispatcher.id"),
        (lambda: dispatcher_key("/c", ""), "dispatcher.id"),
    ],
)
def test_slash_or_empty_part_is_refused(call: object, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        call()  # type: ignore[operator]
    assert err.value.field == field


def _executor(**over: object) -> bytes:
    value: dict[str, object] = {
        "id": "10.0.0.1:5921",
        "address": "10.0.0.1:5921",
        "host": "web-1",
        "group": "php",
        "labels": {"rack": "r1", "cores": 8},
        "capacity": 4,
        "version": "0.1.0",
        "started_ms": 1,
    }
    value.update(over)
    return json.dumps(value).encode()


def test_parse_executor() -> None:
    ref = parse_executor("/c/executors/php/10.0.0.1:5921", _executor())
    assert ref == ExecutorRef(address="10.0.0.1:5921", group="php", host="web-1")
    assert ref.labels == {"rack": "r1", "cores": "8"}


def test_parse_executor_defaults_from_key_and_address() -> None:
    ref = parse_executor("/c/executors/batch/e1", json.dumps({"address": "10.0.0.2:5921"}).encode())
    assert (ref.group, ref.host, ref.labels) == ("batch", "10.0.0.2", {})


@pytest.mark.parametrize(
    "value",
    [
        b"{not json",
        b"\xff",
        b"[]",
        b'"10.0.0.1:5921"',
        _executor(address=None),
        _executor(address="no-port"),
        _executor(address=5921),
        _executor(group=7),
        _executor(labels=["a"]),
    ],
)
def test_parse_executor_refuses_malformed(value: bytes) -> None:
    with pytest.raises((ValueError, TypeError, KeyError)):
        parse_executor("/c/executors/g/e", value)


def test_parse_dispatcher() -> None:
    value = {"id": "host-a:5920", "address": "10.0.0.9:5920", "version": "0.1.0", "started_ms": 42}
    assert parse_dispatcher("/c/dispatchers/host-a:5920", json.dumps(value).encode()) == DispatcherRef(
        "host-a:5920", "10.0.0.9:5920", "0.1.0", 42
    )
    with pytest.raises(TypeError):
        parse_dispatcher("/c/dispatchers/d", json.dumps({**value, "started_ms": "soon"}).encode())


def test_factory_picks_static_without_endpoints() -> None:
    registry = make_registry(EtcdConfig(), ["127.0.0.1:5921"])
    assert isinstance(registry, StaticRegistry)
    assert [r.address for r in registry.live()] == ["127.0.0.1:5921"]


def test_factory_picks_etcd_with_endpoints() -> None:
    registry = make_registry(EtcdConfig(endpoints=["127.0.0.1:2379"], prefix="/x"), ["127.0.0.1:5921"])
    assert isinstance(registry, EtcdRegistry)
    assert registry.prefix == "/x/executors/"
    assert registry.live() == []  # nothing read yet; constructing does not connect
