"""Shared fixtures of the executor tests: each module starts its own
`executor` (module scope); `stub` talks to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from crontrio.protos import crontrio_pb2_grpc
from tests.integration.test_executor import Executor


@pytest_asyncio.fixture
async def stub(executor: Executor) -> AsyncIterator[crontrio_pb2_grpc.ExecutorStub]:
    async with executor.channel() as channel:
        yield crontrio_pb2_grpc.ExecutorStub(channel)
