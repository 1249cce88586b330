"""The CPU of one HTTP request through aiohttp alone, on warm keep-alive
connections, as the executor sends it (same session options): the "task
work" of an HTTP run, to set beside the CPU per firing of fire_lag.

    python -m bench.httpsink --port 18181 --stats /tmp/sink.json &
    .venv/bin/python bench/results/2026-12-06-issue16-round3/aiohttp_request_cost.py 18181
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp
import uvloop

N = 1000


async def main() -> None:
    port = int(sys.argv[1])
    connector = aiohttp.TCPConnector(limit=N, limit_per_host=N, keepalive_timeout=30)
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(),
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("Content-Type",),
    )

    async def one(i: int) -> None:
        async with session.request("GET", f"http://127.0.0.1:{port}/j{i}", headers={}, data=None, allow_redirects=False) as r:
            async for _chunk in r.content.iter_any():
                pass

    await asyncio.gather(*(one(i) for i in range(N)))  # the pool warm, as in steady state
    for round_ in range(5):
        cpu = time.process_time()
        await asyncio.gather(*(one(i) for i in range(N)))
        print(f"round {round_}: {1000 * (time.process_time() - cpu) / N:.3f} ms CPU per request ({N} at once)")
    await session.close()


uvloop.run(main())
