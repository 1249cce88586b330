"""What the metrics hooks cost per firing and per run (CPU, in-process).

    python -m bench.metrics_hooks [--n 200000]

The dispatcher calls three hooks per firing (fired, started, and its share
of a committed batch: one insert, two status updates); the executor one per
run. Prints the best of 5 rounds in microseconds. A firing's own work is
about 500 us of dispatcher CPU (dispatcher/scheduler.py), so this is the
share /metrics adds to it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from crontrio.common import status
from crontrio.common.model import RunRecord
from crontrio.dispatcher.metrics import FIRED, DispatcherMetrics
from crontrio.executor.metrics import ExecutorMetrics
from crontrio.protos import crontrio_pb2 as pb


def best_of(fn: Callable[[], object], n: int, rounds: int = 5) -> float:
    """Seconds per call, the best of `rounds` rounds of `n` calls."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000, help="calls per round")
    args = parser.parse_args(argv)
    dispatcher, executor = DispatcherMetrics(), ExecutorMetrics()
    record = RunRecord(run_id="1-1000-1", job_id=1, job_name="j", scheduled_ms=1000, attempt=1, status=status.PENDING)
    updates = [(record.run_id, {"status": status.RUNNING, "started_ms": 1003}), (record.run_id, {"status": status.SUCCEEDED})]
    result = pb.RunFinished(run_id=record.run_id, status=status.SUCCEEDED, started_ms=1003, finished_ms=1500)

    def per_firing() -> None:
        dispatcher.firing(FIRED)
        dispatcher.started(record, 1003)
        dispatcher.committed([record], [True], updates)

    print(f"dispatcher hooks per firing: {best_of(per_firing, args.n) * 1e6:.2f} us")
    print(f"executor hook per run: {best_of(lambda: executor.finished(result), args.n) * 1e6:.2f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
