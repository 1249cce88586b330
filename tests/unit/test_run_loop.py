from __future__ import annotations

import asyncio

import pytest
import uvloop

from crontrio.common.runtime import run_loop


async def loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_services_run_on_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRONTRIO_EVENT_LOOP", raising=False)
    assert issubclass(run_loop(loop_type()), uvloop.Loop)


def test_asyncio_loop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRONTRIO_EVENT_LOOP", "asyncio")
    assert not issubclass(run_loop(loop_type()), uvloop.Loop)
