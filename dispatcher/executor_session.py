"""One long-lived Executor.Session stream per executor: how runs are sent.

A gRPC call per run (Run, then Ack) cost the dispatcher and the executor more
CPU than an HTTP task itself; at a thousand runs a second that call setup was
the limit. A Session carries every run's request, RunStarted, RunFinished
and ack on one stream, and in batches where both ends know them: the runs
sent in one turn of the event loop go as one RunBatch (as acks go as one
AckRequest), and the executor answers with EventBatch. A message per run
each way was a third of the dispatcher's CPU in a burst.

It is only the fast path. When a session breaks (executor restart, network),
every run it carried raises SessionBrokenError and its caller goes back to
the per-run Run call, which is idempotent by run id: it attaches to a run the
executor got, or starts one whose request never arrived.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator

import grpc

from crontrio.common import session_batch
from crontrio.dispatcher.connect_errors import never_connected
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


class SessionBrokenError(Exception):
    """The session a run was sent on ended before the run finished.
    ``never_connected``: the stream never reached the executor, so no run
    sent on it was delivered."""

    def __init__(self, message: str, never_connected: bool = False) -> None:
        super().__init__(message)
        self.never_connected = never_connected


class _Inbox:
    """One run's events from the reader: at most a RunStarted and a last
    event (or the session's end), so a deque and a future, not a Queue."""

    __slots__ = ("_items", "_wake")

    def __init__(self) -> None:
        self._items: deque[pb.SessionEvent | SessionBrokenError] = deque()
        self._wake: asyncio.Future[None] | None = None

    def put(self, item: pb.SessionEvent | SessionBrokenError) -> None:
        self._items.append(item)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def get(self) -> pb.SessionEvent | SessionBrokenError:
        while not self._items:
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake
        return self._items.popleft()


# How long the runs sent on a new stream wait for the executor to say whether
# it takes RunBatch. A current executor says so at once (one round trip, but
# read only when the loop gets to it: sending a burst of 2,000 runs kept the
# loop busy for over 100 ms); an older one only with its first event, so
# after this the runs go one per message (late by this much, while versions
# differ). Waiting, not sending singles meanwhile, matters: a burst sent on
# a fresh stream is otherwise sent whole before the answer is read.
BATCH_ANSWER_WAIT_S = 0.5


class _Stream:
    """One Session call and the runs waiting on it."""

    def __init__(self, stub: pb_grpc.ExecutorStub, address: str) -> None:
        self.address = address
        self.outbox: asyncio.Queue[pb.SessionRequest | None] = asyncio.Queue()
        self.waiters: dict[str, _Inbox] = {}
        # Whether the executor takes RunBatch (its initial metadata says so);
        # None until it is known.
        self.batches: bool | None = None
        self._runs: list[pb.RunRequest] = []
        # Ours says we read EventBatch.
        self.call = stub.Session(self._requests(), metadata=((session_batch.METADATA_KEY, "1"),))
        self.unimplemented = False
        self.reader = asyncio.create_task(self._read(), name=f"session {address}")

    @property
    def open(self) -> bool:
        return not self.reader.done()

    def send(self, request: pb.RunRequest) -> None:
        """Send a run: in this turn's RunBatch when the executor takes them,
        alone when it does not."""
        if self.batches is False:
            self.outbox.put_nowait(pb.SessionRequest(run=request))
            return
        if not self._runs:
            loop = asyncio.get_running_loop()
            if self.batches:
                loop.call_soon(self._flush_runs)
            else:
                # The answer flushes them (see _read), or this, without it.
                loop.call_later(BATCH_ANSWER_WAIT_S, self._flush_runs)
        self._runs.append(request)

    def _flush_runs(self) -> None:
        runs, self._runs = self._runs, []
        if not runs:
            return  # already flushed (by the executor's answer)
        # A lone run goes as itself: the same to the executor, one wrapper less.
        # On a stream that ended in between this goes nowhere, and its runs'
        # waiters already have their SessionBrokenError: they fall back to Run.
        if not self.batches:
            for request in runs:
                self.outbox.put_nowait(pb.SessionRequest(run=request))
            return
        for chunk in session_batch.cut(runs):
            if len(chunk) == 1:
                self.outbox.put_nowait(pb.SessionRequest(run=chunk[0]))
            else:
                self.outbox.put_nowait(pb.SessionRequest(run_batch=pb.RunBatch(runs=chunk)))

    async def _requests(self) -> AsyncIterator[pb.SessionRequest]:
        while (message := await self.outbox.get()) is not None:
            yield message

    def _deliver(self, event: pb.SessionEvent, kind: str) -> None:
        waiter = self.waiters.get(getattr(event, kind).run_id)
        if waiter is not None:
            waiter.put(event)

    async def _read(self) -> None:
        error = SessionBrokenError(f"session with executor {self.address} ended")
        try:
            metadata = await self.call.initial_metadata()
            self.batches = metadata is not None and metadata.get(session_batch.METADATA_KEY) == "1"
            self._flush_runs()  # those that waited for this answer
            async for event in self.call:
                kind = event.WhichOneof("event")
                if kind == "batch":
                    for each in event.batch.events:
                        if (each_kind := each.WhichOneof("event")) not in (None, "batch"):
                            self._deliver(each, each_kind)
                elif kind is not None:
                    self._deliver(event, kind)
        except grpc.aio.AioRpcError as exc:
            self.unimplemented = exc.code() == grpc.StatusCode.UNIMPLEMENTED
            error = SessionBrokenError(
                f"session with executor {self.address} broke: {exc.code().name} {exc.details()}", never_connected(exc)
            )
        except asyncio.CancelledError:
            error = SessionBrokenError(f"session with executor {self.address} closed")
            raise
        finally:
            if self.waiters:
                log.info("%s; %d run(s) on it go on through Run", error, len(self.waiters))
            for waiter in self.waiters.values():
                waiter.put(error)

    def close(self) -> None:
        self.outbox.put_nowait(None)
        self.call.cancel()


class ExecutorSession:
    """Sends runs and acks to one executor over a Session, reopened on demand."""

    def __init__(self, stub: pb_grpc.ExecutorStub, address: str) -> None:
        self._stub = stub
        self.address = address
        self._stream: _Stream | None = None
        self._acks: list[str] = []
        # An executor without Session (an older version): never ask again.
        self.unsupported = False

    def _current(self) -> _Stream:
        stream = self._stream
        if stream is None or not stream.open:
            if stream is not None and stream.unimplemented:
                self.unsupported = True
                raise SessionBrokenError(f"executor {self.address} has no Session")
            stream = self._stream = _Stream(self._stub, self.address)
        return stream

    async def run(self, request: pb.RunRequest) -> AsyncIterator[pb.SessionEvent]:
        """Send one run; its RunStarted, then RunFinished or RunRefused.
        Raises SessionBrokenError when the stream ends first."""
        stream = self._current()
        events = _Inbox()
        stream.waiters[request.run_id] = events
        try:
            stream.send(request)
            while True:
                event = await events.get()
                if isinstance(event, SessionBrokenError):
                    raise event
                yield event
                if not event.HasField("started"):
                    return
        finally:
            if stream.waiters.get(request.run_id) is events:
                del stream.waiters[request.run_id]

    def ack(self, run_id: str) -> bool:
        """Queue an ack; those queued in one turn of the event loop go as one
        message. False when there is no open session (call Ack instead)."""
        stream = self._stream
        if stream is None or not stream.open:
            return False
        if not self._acks:
            asyncio.get_running_loop().call_soon(self._flush_acks)
        self._acks.append(run_id)
        return True

    def _flush_acks(self) -> None:
        run_ids, self._acks = self._acks, []
        stream = self._stream
        if stream is not None and stream.open:
            stream.outbox.put_nowait(pb.SessionRequest(ack=pb.AckRequest(run_ids=run_ids)))
        # else: the session broke in between. The results stay journaled on
        # the executor and are collected again (Run replays, the monitor
        # reconciles): a lost ack costs a replay, never a run.

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
