"""The Executor gRPC service: translates messages and errors, nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from common.errors import ValidationError
from executor.runs import AlreadyAcknowledgedError, DrainingError, RunNotFoundError, RunRegistry
from protos import crontrio_pb2, crontrio_pb2_grpc


class ExecutorServicer(crontrio_pb2_grpc.ExecutorServicer):
    """crontrio.v1.Executor on top of a RunRegistry."""

    def __init__(self, runs: RunRegistry) -> None:
        self.runs = runs

    async def Run(
        self, request: crontrio_pb2.RunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[crontrio_pb2.RunEvent]:
        try:
            events = await self.runs.run(request)
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except DrainingError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except AlreadyAcknowledgedError as exc:
            # Never rerun a finished run, even for a late duplicate request.
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        # A caller going away cancels only this loop; the run goes on.
        async for event in events:
            yield event

    async def Attach(
        self, request: crontrio_pb2.AttachRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[crontrio_pb2.RunEvent]:
        try:
            events = await self.runs.attach(request.run_id)
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except RunNotFoundError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        # As for Run: a follower going away cancels only this loop.
        async for event in events:
            yield event

    async def Kill(
        self, request: crontrio_pb2.KillRequest, context: grpc.aio.ServicerContext
    ) -> crontrio_pb2.KillReply:
        return crontrio_pb2.KillReply(killed=self.runs.kill(request.run_id))

    async def Ack(
        self, request: crontrio_pb2.AckRequest, context: grpc.aio.ServicerContext
    ) -> crontrio_pb2.AckReply:
        return crontrio_pb2.AckReply(acknowledged=await self.runs.ack(request.run_ids))

    async def ListResults(
        self, request: crontrio_pb2.ListResultsRequest, context: grpc.aio.ServicerContext
    ) -> crontrio_pb2.ListResultsReply:
        results, running = await self.runs.list_results(list(request.run_ids))
        return crontrio_pb2.ListResultsReply(results=results, running_run_ids=running)

    async def Status(
        self, request: crontrio_pb2.ExecutorStatusRequest, context: grpc.aio.ServicerContext
    ) -> crontrio_pb2.ExecutorStatus:
        return await self.runs.status()
