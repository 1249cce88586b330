"""concurrency: 5,000 runs of `sleep 30` at once on ONE executor.

A bench client (grpc.aio, one or a few channels) opens all Executor.Run
streams at once, with deterministic run ids (bench-<i>), and notes when each
RunStarted and each RunFinished arrives. While they run, the executor's open
fds, RSS and threads are sampled every 0.5 s (the executor process only, not
its children).

The executor is started with a raised open-files soft limit (--nofile,
set in the child before exec, like `prlimit --nofile`): every shell task holds
a pipe and a pidfd, so 5,000 runs need more than the usual 1,024.

Reported: all started? time from the first request until the last RunStarted;
all finished (and succeeded)? executor peak RSS and peak fds; failures (RPC
errors and runs not succeeded). lag_ms is the start latency as the client saw
it (RunStarted arrival - request sent); extra.executor_start_lag_ms uses the
executor's own started_ms instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import secrets
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc

from bench.harness import (
    Scenario,
    Service,
    cli,
    count_fds,
    default_out_dir,
    embedded_conf,
    free_port,
    make_result,
    percentiles,
    proc_stats,
    scenario_cli,
    summary_line,
    write_result,
)
from crontrio.common.cluster import cluster_secret_interceptors
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc

SCENARIO = "concurrency"
SAMPLE_SECONDS = 0.5


class Tally:
    def __init__(self, runs: int) -> None:
        self.sent = [0.0] * runs
        self.started = [0.0] * runs
        self.exec_started_ms = [0] * runs
        self.finished = [0.0] * runs
        self.status = [""] * runs
        self.started_events = [0] * runs
        self.errors: Counter[str] = Counter()
        self.error_times: list[float] = []


async def one_run(stub: Any, i: int, sleep_seconds: float, scheduled_ms: int, tally: Tally) -> None:
    request = pb.RunRequest(
        run_id=f"bench-{i}",
        job_id=i + 1,
        job_name=f"bench-{i}",
        scheduled_ms=scheduled_ms,
        attempt=1,
        shell=pb.ShellTask(command=f"sleep {sleep_seconds:g}"),
    )
    tally.sent[i] = time.time()
    try:
        async for event in stub.Run(request):
            kind = event.WhichOneof("event")
            if kind == "started":
                tally.started_events[i] += 1
                if not tally.started[i]:
                    tally.started[i] = time.time()
                    tally.exec_started_ms[i] = event.started.started_ms
            elif kind == "finished":
                tally.finished[i] = time.time()
                tally.status[i] = event.finished.status
    except grpc.aio.AioRpcError as exc:
        tally.errors[f"{exc.code().name}: {(exc.details() or '')[:120]}"] += 1
        tally.error_times.append(time.time())


async def sample(pid: int, samples: list[dict[str, float]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        stats = await asyncio.to_thread(proc_stats, pid)
        if stats is not None:
            stats["t"] = time.time()
            samples.append(stats)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)


async def drive(
    address: str, pid: int, runs: int, sleep_seconds: float, channels: int, tally: Tally, secret: str
) -> dict[str, Any]:
    options = [
        ("grpc.use_local_subchannel_pool", 1),  # a connection per channel, not one shared
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ]
    # The bench calls the executor as a dispatcher would: with the cluster secret.
    chans = [
        grpc.aio.insecure_channel(address, options=options, interceptors=cluster_secret_interceptors(secret))
        for _ in range(channels)
    ]
    stubs = [pb_grpc.ExecutorStub(c) for c in chans]
    for c in chans:
        await asyncio.wait_for(c.channel_ready(), 10)
    samples: list[dict[str, float]] = []
    # A reading before the first request: the base of the start path's CPU.
    if (before := proc_stats(pid)) is not None:
        samples.append({**before, "t": time.time()})
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample(pid, samples, stop))
    t0 = time.time()
    scheduled_ms = int(t0 * 1000)
    limit = sleep_seconds + max(120.0, runs / 20)
    tasks = [asyncio.create_task(one_run(stubs[i % channels], i, sleep_seconds, scheduled_ms, tally)) for i in range(runs)]
    _done, pending = await asyncio.wait(tasks, timeout=limit)
    for task in pending:
        task.cancel()
    if pending:
        tally.errors[f"bench: not finished within {limit:.0f}s"] += len(pending)
        await asyncio.gather(*pending, return_exceptions=True)
    stop.set()
    await sampler
    # Tidy: the results may be dropped from the executor's journal now.
    acked = 0
    ids = [f"bench-{i}" for i in range(runs) if tally.finished[i]]
    for k in range(0, len(ids), 500):
        reply = await stubs[0].Ack(pb.AckRequest(run_ids=ids[k : k + 500]), timeout=30)
        acked += reply.acknowledged
    for c in chans:
        await c.close()
    return {"t0": t0, "samples": samples, "acked": acked}


def cpu_split(samples: list[dict[str, float]], final: dict[str, float] | None, last_started: float | None) -> dict[str, Any]:
    """The executor's CPU split into its own (the Python process: gRPC, journal,
    spawning) and its reaped children's (the shells and their commands), and
    its own CPU from the first sample to the first sample after the last
    RunStarted: the start path alone. cpu_seconds sums all of it, and on a
    small VM the children's exec dominates, hiding changes in the executor's
    own cost."""
    out: dict[str, Any] = {}
    if final is not None:
        out["executor_cpu_own_s"] = round(final["cpu_own"], 2)
        out["executor_cpu_children_s"] = round(final["cpu_children"], 2)
    if samples and last_started is not None:
        after = next((s for s in samples if s["t"] >= last_started), samples[-1])
        out["executor_cpu_own_to_last_start_s"] = round(after["cpu_own"] - samples[0]["cpu_own"], 2)
    return out


def run(
    runs: int = 5000,
    sleep_seconds: float = 30,
    channels: int = 1,
    nofile: int = 65536,
    out_dir: Path | None = None,
    keep: bool = False,
) -> tuple[dict[str, Any], Path]:
    out_dir = out_dir or default_out_dir()
    params: dict[str, Any] = {"runs": runs, "command": f"sleep {sleep_seconds:g}", "channels": channels, "nofile": nofile}
    # The client holds a socket per channel only, but raise ours too in case.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    with Scenario(SCENARIO, keep) as sc:
        executor = f"127.0.0.1:{free_port()}"
        conf = embedded_conf(sc.root, f"127.0.0.1:{free_port()}", executor, "WARNING")
        secret = secrets.token_urlsafe(32)
        ex = sc.start(Service.crontrio("executor", conf, env={"CRONTRIO_CLUSTER_SECRET": secret}, nofile=nofile))
        ex.wait_serving(executor)
        limits = Path(f"/proc/{ex.pid}/limits").read_text()
        nofile_line = next((line for line in limits.splitlines() if line.startswith("Max open files")), "")
        fds_idle = count_fds(ex.pid)
        tally = Tally(runs)
        info = asyncio.run(drive(executor, ex.pid, runs, sleep_seconds, channels, tally, secret))
        final = {"executor": ex.stats()}
        problems = sc.log_problems()
        ex.stop()

    t0 = info["t0"]
    samples: list[dict[str, float]] = info["samples"]
    started = [i for i in range(runs) if tally.started[i]]
    finished = [i for i in range(runs) if tally.finished[i]]
    statuses = Counter(tally.status[i] or "no result" for i in range(runs))
    last_started = max((tally.started[i] for i in started), default=0.0)
    last_finished = max((tally.finished[i] for i in finished), default=0.0)
    time_to_last_started = last_started - t0 if started else None
    failures = sum(tally.errors.values()) + sum(n for s, n in statuses.items() if s not in ("succeeded", "no result"))
    extra: dict[str, Any] = {
        "all_started": len(started) == runs,
        "started": len(started),
        "time_to_last_started_s": round(time_to_last_started, 2) if time_to_last_started is not None else None,
        "time_to_first_started_s": round(min(tally.started[i] for i in started) - t0, 3) if started else None,
        "all_finished": len(finished) == runs,
        "all_succeeded": statuses.get("succeeded", 0) == runs,
        "finished": len(finished),
        "time_to_last_finished_s": round(last_finished - t0, 2) if finished else None,
        "status_counts": dict(statuses),
        "failures": failures,
        "rpc_errors": dict(tally.errors),
        "rpc_errors_between_s": [round(min(tally.error_times) - t0, 2), round(max(tally.error_times) - t0, 2)]
        if tally.error_times
        else None,
        "started_events_beyond_one": sum(max(0, n - 1) for n in tally.started_events),
        "peak_fds": int(max((s["fds"] for s in samples), default=0)),
        "fds_idle": fds_idle,
        "fd_samples": len(samples),
        "peak_threads": int(max((s["threads"] for s in samples), default=0)),
        "peak_rss_mb_sampled": round(max((s["rss_mb"] for s in samples), default=0.0), 1),
        "executor_nofile_limit": " ".join(nofile_line.split()[3:5]),
        "nofile_note": "the executor's RLIMIT_NOFILE is raised in the child before exec (preexec_fn, like prlimit)",
        "fds_note": "open fds of the executor process only (/proc/<pid>/fd), sampled every 0.5 s",
        "executor_start_lag_ms": percentiles(tally.exec_started_ms[i] - tally.sent[i] * 1000 for i in started),
        "acked": info["acked"],
        **cpu_split(samples, final["executor"], last_started if started else None),
        "log_warnings_errors": problems,
    }
    result = make_result(
        SCENARIO,
        "",
        params,
        sc.started_at,
        expected=runs,
        run=len(started),
        duplicates=extra["started_events_beyond_one"],
        window_seconds=time_to_last_started or 0.0,
        lags_ms=[(tally.started[i] - tally.sent[i]) * 1000 for i in started],
        stats=final,
        extra=extra,
    )
    path = write_result(out_dir, result)
    print(
        summary_line(result, path)
        + f" | last started after {extra['time_to_last_started_s']}s, finished {len(finished)}/{runs}, "
        f"peak fds {extra['peak_fds']}, failures {failures}",
        flush=True,
    )
    return result, path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=5000, help="concurrent runs (default 5000)")
    parser.add_argument("--sleep", type=float, default=30, help="each run is `sleep SECONDS` (default 30)")
    parser.add_argument("--channels", type=int, default=1, help="gRPC channels (connections) the client spreads the streams over")
    parser.add_argument("--nofile", type=int, default=65536, help="the executor's open-files soft limit (default 65536)")
    parser.add_argument("--out", type=Path, help="directory for the JSON (default bench/results/<UTC date>)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (conf, journal, log)")


def main_args(args: argparse.Namespace) -> int:
    run(args.runs, args.sleep, args.channels, args.nofile, args.out, args.keep)
    return 0


@cli
def main(argv: list[str] | None = None) -> int:
    return scenario_cli("python -m bench.concurrency", __doc__, add_arguments, main_args, argv)


if __name__ == "__main__":
    sys.exit(main())
