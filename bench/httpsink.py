"""The target of fire_lag's http variant: a raw asyncio HTTP/1.1 server that
answers every request 200 and notes (path, arrival ms), nothing more.

It runs as its own process, so its CPU is not the executor's and it never
competes with the bench client. On SIGTERM it writes what it saw as JSON
(`--stats FILE`: {"requests": N, "arrivals": {path: [ms, ...]}}) and exits.

    python -m bench.httpsink --port 8080 --stats /tmp/sink.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class SinkProtocol(asyncio.Protocol):
    def __init__(self, arrivals: dict[str, list[int]]) -> None:
        self.arrivals = arrivals
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        arrived = time.time_ns() // 1_000_000
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            body_len = 0
            lowered = head.lower()
            at = lowered.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lowered.find(b"\r\n", at + 2)
                body_len = int(lowered[at + 17 : stop if stop >= 0 else len(lowered)].strip() or 0)
            if len(self.buf) < end + 4 + body_len:
                return
            first = head.split(b"\r\n", 1)[0].split(b" ")
            path = first[1].decode(errors="replace") if len(first) > 1 else "?"
            self.buf = self.buf[end + 4 + body_len :]
            self.arrivals.setdefault(path, []).append(arrived)
            assert self.transport is not None
            self.transport.write(RESPONSE)


async def serve(port: int) -> dict[str, list[int]]:
    """Serve until SIGTERM/SIGINT; returns path -> arrival times (epoch ms)."""
    arrivals: dict[str, list[int]] = {}
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(lambda: SinkProtocol(arrivals), "127.0.0.1", port, backlog=4096)
    await stop.wait()
    server.close()
    return arrivals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.httpsink", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stats", required=True, help="file to write the request log to on SIGTERM")
    args = parser.parse_args(argv)
    arrivals = asyncio.run(serve(args.port))
    with open(args.stats, "w") as f:
        json.dump({"requests": sum(len(v) for v in arrivals.values()), "arrivals": arrivals}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
