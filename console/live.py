"""A run's output over HTTP: Server-Sent Events while it runs, JSON or text otherwise.

The stream is Admin.TailRun (follow): the output so far, then live output,
then the final status. Each `output` event carries the output offset after
it (bytes since the start of the run's output) as its id, so a client that
reconnects with Last-Event-ID (EventSource does that by itself after a
dropped connection; the run page passes ?offset= after a reload) gets the
bytes after that offset only: nothing twice, nothing lost. The offset
counts from the start of what the dispatcher still holds, which is the
whole output as long as it fits the executor's output_limit_bytes (64 KiB
by default); beyond that a resume is best-effort.

Text is sent decoded (a UTF-8 character or an ANSI escape split across
chunks is held back until complete) with ANSI escapes stripped, so what
reaches the page is plain text; the page inserts it with textContent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import dataclass

import grpc
from aiohttp import web

from crontrio.common import status as run_status
from crontrio.console.gateway import Gateway, NoDispatcherError
from crontrio.console.text import output_text
from crontrio.protos import crontrio_pb2 as pb

log = logging.getLogger(__name__)
# How long a plain GET of a running run waits for the output so far.
FIRST_CHUNK_SECONDS = 2.0
# Comment lines keep proxies and the browser from timing out a quiet stream.
KEEPALIVE_SECONDS = 15.0
# An escape sequence longer than this is not held back (it will not complete).
_MAX_HELD = 64
_ESCAPE_DONE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


@dataclass
class Splitter:
    """Cuts a byte stream where it is safe to decode: never inside a UTF-8
    character or an ANSI escape. `offset` counts the bytes handed out."""

    offset: int = 0
    held: bytes = b""

    def feed(self, data: bytes, final: bool = False) -> bytes:
        buffer = self.held + data
        cut = len(buffer) if final else _safe_cut(buffer)
        self.held = buffer[cut:]
        self.offset += cut
        return buffer[:cut]


def _safe_cut(buffer: bytes) -> int:
    cut = len(buffer)
    # An incomplete UTF-8 character at the end: its lead byte and what follows wait.
    for back in range(1, min(4, len(buffer)) + 1):
        byte = buffer[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: look further back
        if byte >= 0xC0:
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            if needed > back:
                cut = len(buffer) - back
        break
    escape = buffer.rfind(b"\x1b", 0, cut)
    if escape >= 0 and cut - escape <= _MAX_HELD:
        tail = buffer[escape:cut].decode("utf-8", "replace")
        if not _ESCAPE_DONE.match(tail):
            cut = escape
    return cut


def _offset(request: web.Request) -> int:
    """Where to resume: Last-Event-ID (a reconnecting EventSource) wins over ?offset=."""
    for value in (request.headers.get("Last-Event-ID", ""), request.query.get("offset", "")):
        if value.strip().isdigit():
            return int(value.strip())
    return 0


def _event(kind: str, data: dict[str, object], event_id: int | None = None) -> bytes:
    lines = [f"event: {kind}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False))
    return ("\n".join(lines) + "\n\n").encode()


async def stream(request: web.Request, gw: Gateway, token: str, run_id: str) -> web.StreamResponse:
    """SSE of the run's output from the offset the client has, ending with `end`."""
    skip = _offset(request)
    chunks = gw.stream("TailRun", pb.TailRunRequest(run_id=run_id, follow=True), token)
    iterator = chunks.__aiter__()
    first: pb.TailChunk | None = None
    pending = asyncio.ensure_future(iterator.__anext__())
    # A refusal (404, 403) comes at once and is still answered as JSON; a run
    # that has printed nothing yet must not hold back the stream's headers.
    done, _ = await asyncio.wait({pending}, timeout=FIRST_CHUNK_SECONDS)
    if done:
        try:
            first = pending.result()
        except StopAsyncIteration:
            first = pb.TailChunk()
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
    response.headers["Cache-Control"] = "no-store"
    await response.prepare(request)
    splitter = Splitter(offset=skip)  # offsets of the bytes after what the client has
    received = 0  # bytes of the stream so far
    ending = ""
    try:
        await response.write(b"retry: 2000\n\n")
        chunk = first if first is not None else await _next(iterator, response, pending)
        while chunk is not None:
            data, start = chunk.data, received
            received += len(data)
            if received <= skip:
                data = b""
            elif start < skip:
                data = data[skip - start :]
            piece = splitter.feed(data, final=bool(chunk.status))
            if piece:
                await response.write(_event("output", {"text": output_text(piece)}, splitter.offset))
            if chunk.status:
                ending = chunk.status
                break
            chunk = await _next(iterator, response)
        if not ending:
            # The stream ended without a status (a run tailed while it had none).
            run = await gw.call("GetRun", pb.RunRef(run_id=run_id), token)
            ending = run.status
        await response.write(_event("end", {"status": ending, "offset": splitter.offset}, splitter.offset))
    except grpc.aio.AioRpcError as exc:
        log.info("output stream of run %s ended: %s %s", run_id, exc.code().name, exc.details())
        await _write_quietly(response, _event("failure", {"code": exc.code().name, "message": exc.details() or ""}))
    except NoDispatcherError as exc:
        await _write_quietly(response, _event("failure", {"code": "UNAVAILABLE", "message": str(exc)}))
    except ConnectionResetError:  # aiohttp's ClientConnectionResetError too
        log.debug("output stream of run %s: the client went away", run_id)
    finally:
        if not pending.done():
            pending.cancel()
        with contextlib.suppress(Exception):
            await chunks.aclose()  # type: ignore[attr-defined]
    return response


async def _next(
    iterator: object, response: web.StreamResponse, pending: asyncio.Future[pb.TailChunk] | None = None
) -> pb.TailChunk | None:
    """The next chunk (`pending`: one already asked for); keep-alive comments while the run is quiet."""
    if pending is None:
        pending = asyncio.ensure_future(iterator.__anext__())  # type: ignore[attr-defined]
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_SECONDS)
            if done:
                try:
                    return pending.result()
                except StopAsyncIteration:
                    return None
            await response.write(b": keep-alive\n\n")
    finally:
        if not pending.done():
            pending.cancel()


async def _write_quietly(response: web.StreamResponse, data: bytes) -> None:
    with contextlib.suppress(ConnectionResetError):
        await response.write(data)


async def so_far(gw: Gateway, token: str, run_id: str) -> tuple[bytes, str]:
    """The output so far and the final status ("" while the run is going)."""
    run = await gw.call("GetRun", pb.RunRef(run_id=run_id), token)
    if run.status not in run_status.ACTIVE:
        return bytes(run.output), run.status
    # A running run's output lives on its executor: the first chunk of a
    # follow is what it has so far.
    chunks = gw.stream("TailRun", pb.TailRunRequest(run_id=run_id, follow=True), token)
    iterator = chunks.__aiter__()
    try:
        chunk = await asyncio.wait_for(iterator.__anext__(), FIRST_CHUNK_SECONDS)
        return bytes(chunk.data), chunk.status
    except (StopAsyncIteration, TimeoutError):
        return b"", ""
    finally:
        with contextlib.suppress(Exception):
            await chunks.aclose()  # type: ignore[attr-defined]
