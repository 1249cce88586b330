"""The Executor gRPC service: translates messages and errors, nothing more."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

import grpc

from crontrio.common import session_batch, status
from crontrio.common.errors import ValidationError
from crontrio.executor.refusals import AlreadyAcknowledgedError, DrainingError, NotJournaledError, RunNotFoundError
from crontrio.executor.run_handle import Milestone
from crontrio.executor.runs import RunTable
from crontrio.protos import crontrio_pb2, crontrio_pb2_grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Refusal:
    """How a run the executor will not start is refused: the status code of
    a Run call (and of a RunRefused on a Session), and the trailing metadata
    a Run call carries with it."""

    code: grpc.StatusCode
    metadata: tuple[tuple[str, str], ...] = ()


# The one table of refusals, for Run and Session alike.
_REFUSALS: tuple[tuple[type[Exception], _Refusal], ...] = (
    (ValidationError, _Refusal(grpc.StatusCode.INVALID_ARGUMENT)),
    # The metadata tells the dispatcher that this run was not accepted
    # (unlike a broken connection): it may send it elsewhere.
    (DrainingError, _Refusal(grpc.StatusCode.UNAVAILABLE, ((status.NOT_STARTED_METADATA, "draining"),))),
    # Never rerun a finished run, even for a late duplicate request.
    (AlreadyAcknowledgedError, _Refusal(grpc.StatusCode.FAILED_PRECONDITION)),
    # Not started (a full disk, say): the dispatcher may send it elsewhere.
    (NotJournaledError, _Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED)),
)


def _refusal(exc: Exception) -> _Refusal | None:
    """The refusal ``exc`` stands for; None for an unexpected error."""
    return next((refusal for kind, refusal in _REFUSALS if isinstance(exc, kind)), None)


class ExecutorServicer(crontrio_pb2_grpc.ExecutorServicer):
    """crontrio.v1.Executor on top of a RunTable."""

    def __init__(self, runs: RunTable) -> None:
        self.runs = runs

    async def Run(
        self, request: crontrio_pb2.RunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[crontrio_pb2.RunEvent]:
        try:
            events = await self.runs.run(request)
        except Exception as exc:
            refusal = _refusal(exc)
            if refusal is None:
                raise
            await context.abort(refusal.code, str(exc), trailing_metadata=refusal.metadata)
        # A caller going away cancels only this loop; the run goes on.
        async for event in events:
            yield event

    async def Session(
        self, request_iterator: AsyncIterator[crontrio_pb2.SessionRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[crontrio_pb2.SessionEvent]:
        # Tells the dispatcher this executor takes RunBatch (see the proto).
        await context.send_initial_metadata(((session_batch.METADATA_KEY, "1"),))
        # A dispatcher that reads EventBatch says so in its metadata; an older
        # one gets one event per message.
        batches = (session_batch.METADATA_KEY, "1") in (context.invocation_metadata() or ())
        session = _Session(self.runs, request_iterator, batches)
        try:
            while (messages := await session.take()) is not None:
                for message in messages:
                    yield message
        finally:
            # The dispatcher went away (or hung up): stop following, and the
            # runs go on, their results journaled until a Run/Ack collects them.
            session.close()

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

    async def Kill(self, request: crontrio_pb2.KillRequest, context: grpc.aio.ServicerContext) -> crontrio_pb2.KillReply:
        if request.HasField("replace_with"):  # never a kill, whatever before_start_only says
            if request.replace_with.run_id != request.run_id:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "replace_with.run_id: must be run_id")
            try:
                return crontrio_pb2.KillReply(killed=await self.runs.replace_held(request.replace_with))
            except ValidationError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if request.before_start_only:
            reason = request.reason or "cancelled before its scheduled start"
            return crontrio_pb2.KillReply(killed=self.runs.cancel_held(request.run_id, reason))
        if request.reason:
            return crontrio_pb2.KillReply(killed=self.runs.kill(request.run_id, request.reason))
        return crontrio_pb2.KillReply(killed=self.runs.kill(request.run_id))

    async def Ack(self, request: crontrio_pb2.AckRequest, context: grpc.aio.ServicerContext) -> crontrio_pb2.AckReply:
        try:
            acknowledged = await self.runs.ack(request.run_ids)
        except sqlite3.Error as exc:
            # The journal cannot record it (a full disk: logged once, by the
            # journal). The results stay and are acknowledged again later.
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"could not journal the acknowledgement: {exc}")
        return crontrio_pb2.AckReply(acknowledged=acknowledged)

    async def ListResults(
        self, request: crontrio_pb2.ListResultsRequest, context: grpc.aio.ServicerContext
    ) -> crontrio_pb2.ListResultsReply:
        try:
            results, running, token = await self.runs.list_results(
                list(request.run_ids), request.page_token, request.max_page_bytes
            )
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return crontrio_pb2.ListResultsReply(results=results, running_run_ids=running, next_page_token=token)

    async def Status(
        self, request: crontrio_pb2.ExecutorStatusRequest, context: grpc.aio.ServicerContext
    ) -> crontrio_pb2.ExecutorStatus:
        return await self.runs.status()


class _Session:
    """One Executor.Session stream: a task reads requests, a task per run
    decides on it (refuses, replays, attaches or starts it) and then ends,
    leaving the run's handle to call back with its RunStarted and
    RunFinished (RunHandle.watch). Events wait in a list until the stream's
    writer takes them all at once (``take``): what piled up while the last
    message was written goes as one EventBatch to a dispatcher that reads them."""

    def __init__(self, runs: RunTable, requests: AsyncIterator[crontrio_pb2.SessionRequest], batches: bool) -> None:
        self._runs = runs
        self._pending: list[crontrio_pb2.SessionEvent] = []
        self._ready = asyncio.Event()
        # The dispatcher stopped sending and every run it sent has reported.
        self._ended = False
        # The dispatcher reads EventBatch (it said so, or sent a RunBatch).
        self._batches = batches
        self._followers: set[asyncio.Task[None]] = set()
        # Runs watched and not finished yet: a half-closed stream ends after them.
        self._watched: set[str] = set()
        self._reading = True
        self._closed = False
        self._reader = asyncio.create_task(self._read(requests), name="session reader")

    async def take(self) -> list[crontrio_pb2.SessionEvent] | None:
        """The next messages to write: every event pending, as one EventBatch
        when there are several and the dispatcher reads batches; None at the end."""
        while not self._pending:
            if self._ended:
                return None
            self._ready.clear()
            await self._ready.wait()
        events, self._pending = self._pending, []
        if not self._batches or len(events) == 1:
            return events
        return [
            chunk[0] if len(chunk) == 1 else crontrio_pb2.SessionEvent(batch=crontrio_pb2.EventBatch(events=chunk))
            for chunk in session_batch.cut(events)
        ]

    def _emit(self, event: crontrio_pb2.SessionEvent) -> None:
        if self._closed:
            return  # nobody reads them any more
        self._pending.append(event)
        self._ready.set()

    def _milestone(self, milestone: Milestone) -> None:
        """A watched run's RunStarted or RunFinished (RunHandle.watch)."""
        if isinstance(milestone, crontrio_pb2.RunStarted):
            self._emit(crontrio_pb2.SessionEvent(started=milestone))
            return
        self._emit(crontrio_pb2.SessionEvent(finished=milestone))
        self._watched.discard(milestone.run_id)
        self._end_if_done()

    def _end_if_done(self) -> None:
        """Half-closed by the dispatcher: end the stream once every run it
        sent has been decided on and has reported its end."""
        if not self._reading and not self._followers and not self._watched and not self._ended:
            self._ended = True
            self._ready.set()

    def close(self) -> None:
        # Deciding followers are left to finish and watched runs go on (a
        # run held for its scheduled time still starts on time though its
        # dispatcher went away, and its result is journaled and collected
        # later); what they would report is dropped.
        self._closed = True
        self._reader.cancel()

    async def _read(self, requests: AsyncIterator[crontrio_pb2.SessionRequest]) -> None:
        try:
            async for message in requests:
                which = message.WhichOneof("request")
                if which == "run":
                    self._spawn(self._follow(message.run), f"session run {message.run.run_id}")
                elif which == "run_batch":
                    self._batches = True
                    # Each as a `run` message: refused, attached to or started on its own.
                    for request in message.run_batch.runs:
                        self._spawn(self._follow(request), f"session run {request.run_id}")
                elif which == "ack":
                    self._spawn(self._ack(list(message.ack.run_ids)), "session ack")
        except (grpc.aio.AioRpcError, grpc.aio.UsageError) as exc:
            log.info("session: the dispatcher's stream ended: %s", exc)
            return
        # Half-closed: the runs already sent still report, then the stream ends.
        self._reading = False
        self._end_if_done()

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._followers.add(task)
        task.add_done_callback(self._follower_done)

    def _follower_done(self, task: asyncio.Task[None]) -> None:
        self._followers.discard(task)
        self._end_if_done()

    async def _follow(self, request: crontrio_pb2.RunRequest) -> None:
        try:
            decided = await self._runs.decide(request)
        except Exception as exc:
            refusal = _refusal(exc)
            if refusal is None:
                # A bug must not leave the dispatcher waiting on this run forever.
                log.exception("run %s: could not start it", request.run_id)
            code = refusal.code if refusal is not None else grpc.StatusCode.INTERNAL
            refused = crontrio_pb2.RunRefused(run_id=request.run_id, code=code.value[0], message=str(exc))
            self._emit(crontrio_pb2.SessionEvent(refused=refused))
            return
        if isinstance(decided, crontrio_pb2.RunFinished):  # a replay
            self._emit(crontrio_pb2.SessionEvent(finished=decided))
            return
        # Output is left out: a Session carries milestones, Attach the output.
        self._watched.add(request.run_id)
        decided.watch(self._milestone)

    async def _ack(self, run_ids: list[str]) -> None:
        try:
            await self._runs.ack(run_ids)
        except sqlite3.Error:
            log.warning("session: acknowledging %d run(s) could not be journaled (journal error logged once)", len(run_ids))
        except Exception:
            # Harmless, as a failed Ack call: the results stay journaled and
            # are collected (and acknowledged) again later.
            log.exception("session: acknowledging %d run(s) failed", len(run_ids))
