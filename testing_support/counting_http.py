"""A plain HTTP/1.1 server for tests that need to see connections, not
just requests: it answers every request 200 and counts both."""

from __future__ import annotations

import asyncio

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class CountingServer:
    """Answers every request 200 (or none while ``answering`` is False);
    counts the connections and requests it saw."""

    def __init__(self) -> None:
        self.answering = True
        self.connections = 0
        self.requests = 0
        self.port = 0

    def _handler(self) -> asyncio.Protocol:
        server = self

        class Handler(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.Transport)
                server.connections += 1
                self.transport = transport
                self.buf = b""

            def data_received(self, data: bytes) -> None:
                self.buf += data
                while b"\r\n\r\n" in self.buf:
                    _, self.buf = self.buf.split(b"\r\n\r\n", 1)
                    server.requests += 1
                    if server.answering:
                        self.transport.write(RESPONSE)

        return Handler()

    async def start(self) -> asyncio.Server:
        srv = await asyncio.get_running_loop().create_server(self._handler, "127.0.0.1", 0)
        self.port = srv.sockets[0].getsockname()[1]
        return srv
