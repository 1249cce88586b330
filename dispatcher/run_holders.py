"""Which live executor has each of many runs: asked before a dispatcher
carries on the runs it adopted from a dead one (dispatcher/takeover.py,
`FiringRunner.adopt`). A run an executor has (held for its time, running,
or with its result journaled) must be followed there, never sent to another
executor, where it would run a second time.

One ListResults per executor for the whole batch (paged, and chunked in run
ids), not a call per run and executor: at a failover in a burst the
survivor adopts thousands of runs at once.

Only an answer counts as "not here". An executor that cannot say (no answer
in time, as under heavy load, or an error) may hold any of them, so it is
asked again while it stays registered and more than one executor cannot
say; a run nobody claims then goes to the one that could not say (where
Run, idempotent by run id, attaches to it if it is there). Sending such a
run to another executor was how a failover in a burst ran 10 runs twice.
An executor that refuses connections holds nothing that will run: a
restarted one turns the runs it held into `lost` results
(dispatcher/connect_errors.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import grpc

from crontrio.common import status
from crontrio.dispatcher.connect_errors import refused_connection
from crontrio.dispatcher.executor_client import ExecutorClients
from crontrio.protos import crontrio_pb2 as pb

log = logging.getLogger(__name__)

# How long to keep asking executors that cannot say, while two or more of them cannot.
ASK_SECONDS = 10.0
# Each ListResults page (a busy executor answers a few thousand ids in well under this).
CALL_TIMEOUT_SECONDS = 5.0
# Run ids per ListResults request: keeps a request, and the executor's work
# for one page, bounded whatever the batch.
IDS_PER_CALL = 2_000


async def _holding(clients: ExecutorClients, address: str, run_ids: Sequence[str]) -> set[str] | None:
    """The runs among `run_ids` that `address` has, or None if it could not say."""
    known: set[str] = set()
    stub = clients.stub(address)
    try:
        for start in range(0, len(run_ids), IDS_PER_CALL):
            ids = run_ids[start : start + IDS_PER_CALL]
            token = ""
            while True:
                request = pb.ListResultsRequest(run_ids=ids, page_token=token)
                reply = await stub.ListResults(request, timeout=CALL_TIMEOUT_SECONDS)
                known.update(reply.running_run_ids)
                # A run it handed back unstarted is not its: it may run elsewhere.
                known.update(r.run_id for r in reply.results if r.status != status.NOT_STARTED)
                token = reply.next_page_token
                if not token:
                    break
    except grpc.aio.AioRpcError as exc:
        if refused_connection(exc):
            return set()
        log.info("executor %s could not say which runs it has: %s %s", address, exc.code().name, exc.details())
        return None
    return known


async def holders_of(clients: ExecutorClients, live_addresses: Callable[[], list[str]], run_ids: Sequence[str]) -> dict[str, str]:
    """For each of `run_ids`, the address of the executor to follow it on,
    or "" when no live executor has it (it may go anywhere)."""
    wanted = list(dict.fromkeys(run_ids))
    holder: dict[str, str] = {}
    unsure = live_addresses()  # in address order: the first that knows a run has it
    deadline = time.monotonic() + ASK_SECONDS
    delay = 0.2
    left = wanted
    while unsure and left:
        asking = unsure
        answers = await asyncio.gather(*(_holding(clients, a, left) for a in asking))
        unsure = []
        for address, known in zip(asking, answers, strict=True):
            if known is None:
                unsure.append(address)
                continue
            for run_id in known:
                holder.setdefault(run_id, address)
        left = [r for r in left if r not in holder]
        # Gone from the registry (its lease expired): dead, it holds nothing
        # that will run. Failing health checks is not enough: a busy executor
        # fails them and still holds its runs.
        live = set(live_addresses())
        unsure = [a for a in unsure if a in live]
        if len(unsure) <= 1 or time.monotonic() >= deadline:
            break
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
    fallback = unsure[0] if unsure and left else ""
    if fallback:
        log.warning(
            "%d adopted run(s): executor(s) %s could not say whether they have them; following them on %s",
            len(left),
            ", ".join(unsure),
            fallback,
        )
    return {run_id: holder.get(run_id, fallback) for run_id in wanted}
