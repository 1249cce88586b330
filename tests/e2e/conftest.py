"""Fixtures: the trio as real processes (testing_support/trio.py starts it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testing_support.trio import Trio, make_trio, stop_trio


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[Trio]:
    t = make_trio(tmp_path)
    try:
        yield t
    finally:
        stop_trio(t)


@pytest.fixture(scope="module")
def busy_trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    """One trio with two executors shared by a module's tests, each on its own jobs."""
    t = make_trio(tmp_path_factory.mktemp("trio"), executors=2)
    try:
        for service in ("executor", "executor2", "dispatcher", "monitor"):
            t.start(service)
        yield t
    finally:
        stop_trio(t)
