"""Live output for Admin.TailRun followers: one upstream per run, fanned out.

Each follower used to poll the store every 0.2 s while its run waited for
an executor and open its own Attach stream after: 1,500 followers pegged a
dispatcher's CPU. Here every run being followed has one feed, a task that
reads the store (only while the run has no executor yet, and once at the
end) and holds the run's one Attach stream; each chunk it receives is
handed to every follower. A follower that joins late first gets the output
so far (the feed keeps a bounded tail). Followers are capped per run and in
total, so a crowd of clients cannot exhaust the dispatcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import grpc

from crontrio.common import status
from crontrio.common.model import RunRecord
from crontrio.common.store.async_store import AsyncStore
from crontrio.dispatcher.executor_client import ExecutorClients
from crontrio.protos import crontrio_pb2 as pb

log = logging.getLogger(__name__)

# Output kept per feed for followers that join late (the executor keeps
# output_limit_bytes, 64 KiB by default; this covers a raised limit too).
FEED_TAIL_BYTES = 256 * 1024
# A follower that falls this far behind the live output is dropped with
# ABORTED (it may tail again) rather than buffered without bound.
FOLLOWER_BUFFER_BYTES = 4 * 1024 * 1024
# While a run waits for an executor (or the result of a run its executor no
# longer has is being recorded), its feed re-reads the store: from this
# interval, doubling up to the maximum.
POLL_SECONDS = 0.2
MAX_POLL_SECONDS = 2.0


class TailLimitError(Exception):
    """Too many followers (per run or in total); the message names the setting."""


class TailEndedError(Exception):
    """The feed ended with an error for its followers (code and details as gRPC's)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass(eq=False)
class _Follower:
    queue: asyncio.Queue[pb.TailChunk | TailEndedError | None] = field(default_factory=asyncio.Queue)
    buffered: int = 0
    dropped: bool = False


@dataclass(eq=False)
class _Feed:
    run_id: str
    followers: set[_Follower] = field(default_factory=set)
    tail: bytearray = field(default_factory=bytearray)
    sent_output: bool = False
    task: asyncio.Task[None] | None = None


@dataclass
class TailStats:
    """Counters for tests and logs: what the followers cost upstream."""

    feeds_started: int = 0
    upstreams_opened: int = 0  # Attach streams to executors
    store_reads: int = 0  # get_run calls made by feeds


class TailHub:
    def __init__(self, store: AsyncStore, clients: ExecutorClients, *, per_run: int = 100, total: int = 1000) -> None:
        self._store = store
        self._clients = clients
        self.per_run = per_run
        self.total = total
        self._feeds: dict[str, _Feed] = {}
        self._followers = 0
        self.stats = TailStats()

    @property
    def followers(self) -> int:
        return self._followers

    def followers_of(self, run_id: str) -> int:
        feed = self._feeds.get(run_id)
        return len(feed.followers) if feed else 0

    async def follow(self, run_id: str) -> AsyncGenerator[pb.TailChunk, None]:
        """The run's output so far, then live output, then a chunk with its
        final status. Raises TailLimitError before anything else when full,
        TailEndedError when the run cannot be followed (unknown, executor gone)."""
        feed = self._feeds.get(run_id)
        if self._followers >= self.total:
            raise TailLimitError(
                f"this dispatcher already has {self._followers} TailRun followers, the most "
                f"[dispatcher] tail_followers_total allows; try again later, or read the run without follow"
            )
        if feed is not None and len(feed.followers) >= self.per_run:
            raise TailLimitError(
                f"run {run_id} already has {len(feed.followers)} followers, the most "
                f"[dispatcher] tail_followers_per_run allows; try again later, or read the run without follow"
            )
        me = _Follower()
        if feed is None:
            feed = self._feeds[run_id] = _Feed(run_id)
            feed.task = asyncio.get_running_loop().create_task(self._run_feed(feed), name=f"tail-{run_id}")
            self.stats.feeds_started += 1
        elif feed.tail:
            me.queue.put_nowait(pb.TailChunk(data=bytes(feed.tail)))
            me.buffered = len(feed.tail)
        feed.followers.add(me)
        self._followers += 1
        try:
            while True:
                item = await me.queue.get()
                if item is None:
                    return
                if isinstance(item, TailEndedError):
                    raise item
                me.buffered -= len(item.data)
                yield item
                if item.status:
                    return
        finally:
            self._leave(feed, me)

    def _leave(self, feed: _Feed, me: _Follower) -> None:
        if me not in feed.followers:
            return
        feed.followers.discard(me)
        self._followers -= 1
        if not feed.followers and self._feeds.get(feed.run_id) is feed:
            # Nobody listens any more: drop the upstream too.
            del self._feeds[feed.run_id]
            if feed.task is not None and not feed.task.done():
                log.info("tail of run %s: no followers left; its feed stopped", feed.run_id)
                feed.task.cancel()

    def _send(self, feed: _Feed, chunk: pb.TailChunk) -> None:
        if chunk.data:
            feed.sent_output = True
            feed.tail += chunk.data
            if len(feed.tail) > FEED_TAIL_BYTES:
                del feed.tail[: len(feed.tail) - FEED_TAIL_BYTES]
        for follower in list(feed.followers):
            if follower.dropped:
                continue
            follower.buffered += len(chunk.data)
            if follower.buffered > FOLLOWER_BUFFER_BYTES:
                follower.dropped = True
                log.warning("tail of run %s: a follower fell %d bytes behind; dropped", feed.run_id, follower.buffered)
                follower.queue.put_nowait(
                    TailEndedError(grpc.StatusCode.ABORTED, "this follower read too slowly and fell behind; tail the run again")
                )
                continue
            follower.queue.put_nowait(chunk)

    def _end(self, feed: _Feed, item: TailEndedError | None) -> None:
        if self._feeds.get(feed.run_id) is feed:
            del self._feeds[feed.run_id]  # a follower from now on starts a fresh feed
        for follower in feed.followers:
            follower.queue.put_nowait(item)

    async def _read(self, run_id: str) -> RunRecord | None:
        self.stats.store_reads += 1
        return await self._store.get_run(run_id)

    async def _run_feed(self, feed: _Feed) -> None:
        try:
            await self._feed_loop(feed)
        except asyncio.CancelledError:
            raise
        except TailEndedError as exc:
            self._end(feed, exc)
        except Exception as exc:  # tell the followers, keep the dispatcher
            log.exception("tail of run %s failed", feed.run_id)
            self._end(feed, TailEndedError(grpc.StatusCode.INTERNAL, f"tail of run {feed.run_id} failed: {exc}"))
        else:
            self._end(feed, None)

    async def _feed_loop(self, feed: _Feed) -> None:
        delay = POLL_SECONDS
        while True:
            run = await self._read(feed.run_id)
            if run is None:
                raise TailEndedError(grpc.StatusCode.NOT_FOUND, f"no run {feed.run_id!r}")
            if run.status not in status.ACTIVE and run.status != status.QUEUED:
                # Ended: what the store has (only the status if followers saw the output live).
                self._send(feed, pb.TailChunk(data=b"" if feed.sent_output else run.output, status=run.status))
                return
            if run.executor and run.status in status.ACTIVE and await self._attach(feed, run.executor):
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_POLL_SECONDS)

    async def _attach(self, feed: _Feed, executor: str) -> bool:
        """Stream the run from its executor to the followers; True once its
        final status was sent, False when the executor no longer has the run
        (its result is on its way to the store)."""
        self.stats.upstreams_opened += 1
        log.info("tail of run %s: attached to executor %s for %d follower(s)", feed.run_id, executor, len(feed.followers))
        call = self._clients.stub(executor).Attach(pb.AttachRequest(run_id=feed.run_id))
        try:
            async for event in call:
                kind = event.WhichOneof("event")
                if kind == "output":
                    self._send(feed, pb.TailChunk(data=event.output.data))
                elif kind == "finished":
                    # Ended before we attached, its result not recorded yet:
                    # the executor replays only RunFinished, whose tail is
                    # all the output there is (as the store's is).
                    data = b"" if feed.sent_output else event.finished.output_tail
                    self._send(feed, pb.TailChunk(data=data, status=event.finished.status))
                    return True
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise TailEndedError(grpc.StatusCode.UNAVAILABLE, f"executor {executor}: {exc.details()}") from exc
        finally:
            call.cancel()
        return False

    async def close(self) -> None:
        """Stop every feed (dispatcher shutdown); their followers end."""
        tasks = [f.task for f in self._feeds.values() if f.task is not None]
        for feed in list(self._feeds.values()):
            self._end(feed, TailEndedError(grpc.StatusCode.UNAVAILABLE, "the dispatcher is stopping"))
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
