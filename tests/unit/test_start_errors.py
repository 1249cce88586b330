"""common.runtime.serve_until_stopped: start-up failures are one clear line and an exit status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy.exc import OperationalError

from crontrio.common.config import Config
from crontrio.common.runtime import serve_until_stopped
from crontrio.common.store.migrate import SchemaError


def _failing(exc: BaseException) -> Callable[[Config, asyncio.Event], Awaitable[None]]:
    async def serve(cfg: Config, stop: asyncio.Event) -> None:
        raise exc

    return serve


@pytest.mark.parametrize(
    ("exc", "code", "said"),
    [
        (SchemaError("schema 0003 is newer than this version"), 2, "schema 0003 is newer than this version"),
        (OperationalError("SELECT 1", {}, Exception("Can't connect to MySQL server")), 2, "Can't connect to MySQL server"),
        (OSError(98, "Address already in use"), 1, "Address already in use"),
    ],
)
def test_a_service_that_cannot_start_says_why_in_one_line(
    exc: BaseException, code: int, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.CRITICAL, logger="dispatcher"), pytest.raises(SystemExit) as exited:
        serve_until_stopped("dispatcher", _failing(exc), Config())
    assert exited.value.code == code
    [record] = [r for r in caplog.records if r.name == "dispatcher"]
    assert record.levelno == logging.CRITICAL
    assert record.getMessage().startswith("cannot start: ") and said in record.getMessage()
    assert record.exc_info is None  # no traceback


def test_a_service_that_stops_returns() -> None:
    async def serve(cfg: Config, stop: asyncio.Event) -> None:
        return None

    serve_until_stopped("monitor", serve, Config())
