"""Run the executor as a real process and drive it over gRPC: the helpers its tests share.

`start_executor` starts `python -m crontrio.executor` on a free port with
the one launcher (`ServiceProcess`); `shell` and `http` build run requests;
`run`, `read_until` and `read_rest` read a Run call's events.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc
from testing_support.services import (
    ServiceProcess,
    cluster_channel,
    cluster_secret,
    free_port,
    is_serving,
    pid_alive,
    wait_for,
    wait_until,
    write_conf,
)

KILL_GRACE = 1.0
# httpx honours *_PROXY variables; the test server is local.
NO_PROXY_ENV = {"NO_PROXY": "*", "no_proxy": "*"}


@dataclass
class Executor:
    """A running `python -m crontrio.executor` and what it was started with."""

    address: str
    journal: Path
    proc: ServiceProcess
    conf: Path
    given_secret: str = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def secret(self) -> str:
        """The cluster secret it was given, or else the one it created in
        its directory (embedded mode)."""
        return self.given_secret or cluster_secret(self.conf.parent)

    def channel(self, **kwargs: Any) -> grpc.aio.Channel:
        """An async channel presenting its cluster secret, as a dispatcher would."""
        return cluster_channel(self.address, self.secret, **kwargs)

    def stop(self) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took)."""
        started = time.monotonic()
        code = self.proc.stop()
        return code, time.monotonic() - started


def start_executor(directory: Path, *, journal: Path | None = None, secret: str = "", **executor_keys: str) -> Executor:
    """`secret`: the cluster secret (CRONTRIO_CLUSTER_SECRET), for several
    executors one caller reaches with one secret; default: its own."""
    directory.mkdir(parents=True, exist_ok=True)
    address = f"127.0.0.1:{free_port()}"
    journal = journal or directory / "var" / "journal.db"
    conf = write_conf(
        directory,
        {
            "executor": {
                "listen": address,
                "journal": str(journal),
                "kill_grace_seconds": str(KILL_GRACE),
                **executor_keys,
            },
            "log": {"level": "DEBUG"},
        },
    )
    env = {**NO_PROXY_ENV, "CRONTRIO_CLUSTER_SECRET": secret} if secret else NO_PROXY_ENV
    proc = ServiceProcess("executor", conf, directory / f"executor-{address.rsplit(':', 1)[1]}.log", env=env)
    try:
        wait_for(lambda: proc.proc.poll() is None and is_serving(address), 20, f"executor on {address} to serve")
    except AssertionError:
        proc.kill()
        raise AssertionError(f"executor did not start; its log:\n{proc.log_text()}") from None
    return Executor(address=address, journal=journal, proc=proc, conf=conf, given_secret=secret)


def running_executor(directory: Path) -> Iterator[Executor]:
    """Body of a module's `executor` fixture: start, yield, stop cleanly."""
    ex = start_executor(directory)
    yield ex
    code, _ = ex.stop()
    assert code == 0, f"executor exited {code} on SIGTERM; log:\n{ex.proc.log_text()}"


def new_run_id() -> str:
    return f"7-{uuid.uuid4().hex[:12]}-1"


def shell(command: str, run_id: str | None = None, **fields: Any) -> pb.RunRequest:
    env = fields.pop("env", {})
    workdir = fields.pop("workdir", "")
    user = fields.pop("user", "")
    fields.setdefault("job_id", 7)
    fields.setdefault("job_name", "test-job")
    fields.setdefault("attempt", 1)
    fields.setdefault("scheduled_ms", 1_700_000_000_000)
    return pb.RunRequest(
        run_id=run_id or new_run_id(), shell=pb.ShellTask(command=command, workdir=workdir, env=env, user=user), **fields
    )


def http(url: str, **fields: Any) -> pb.RunRequest:
    task = pb.HttpTask(
        url=url,
        method=fields.pop("method", "GET"),
        headers=fields.pop("headers", {}),
        body=fields.pop("body", ""),
        expected_statuses=fields.pop("expected_statuses", []),
        follow_redirects=fields.pop("follow_redirects", False),
        skip_tls_verify=fields.pop("skip_tls_verify", False),
    )
    return pb.RunRequest(run_id=new_run_id(), job_id=8, job_name="http-job", attempt=1, http=task, **fields)


@dataclass
class Stream:
    """The events of one Run call, taken apart."""

    events: list[pb.RunEvent] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return [str(e.WhichOneof("event")) for e in self.events]

    @property
    def started(self) -> pb.RunStarted:
        return self.events[0].started

    @property
    def output(self) -> bytes:
        return b"".join(e.output.data for e in self.events if e.HasField("output"))

    @property
    def finished(self) -> pb.RunFinished:
        return self.events[-1].finished


async def run(stub: crontrio_pb2_grpc.ExecutorStub, request: pb.RunRequest) -> Stream:
    stream = Stream()
    async for event in stub.Run(request, timeout=60):
        stream.events.append(event)
    # A replay is RunFinished alone; anything else starts with RunStarted.
    assert stream.kinds == ["finished"] or stream.kinds[0] == "started", stream.kinds
    assert stream.kinds[-1] == "finished" and set(stream.kinds[1:-1]) <= {"output"}, stream.kinds
    return stream


async def read_rest(call: Any) -> list[pb.RunEvent]:
    """The remaining events of a call already read with ``read()`` (grpc.aio
    forbids mixing read() with async iteration)."""
    events = []
    while (event := await asyncio.wait_for(call.read(), 30)) is not grpc.aio.EOF:
        events.append(event)
    return events


async def read_until(call: Any, predicate: Callable[[bytes], bool], seen: list[pb.RunEvent]) -> bytes:
    """Read a Run call until its output so far satisfies ``predicate``."""
    output = b""
    while not predicate(output):
        event = await asyncio.wait_for(call.read(), 20)
        assert event is not grpc.aio.EOF, f"stream ended before the expected output; got {output!r}"
        seen.append(event)
        if event.HasField("output"):
            output += event.output.data
        assert not event.HasField("finished"), f"run finished early: {event.finished}"
    return output


def pids_in(output: bytes) -> list[int]:
    return [int(x) for x in re.findall(rb"^(\d+)$", output, re.MULTILINE)]


async def all_dead(pids: list[int]) -> bool:
    return not any(pid_alive(pid) for pid in pids)


async def health(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        return int(reply.status)


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} for pid {pid}")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def start_then_crash(directory: Path, request: pb.RunRequest, marker: Path) -> tuple[Executor, pb.RunStarted]:
    """Start ``request`` on a new executor, wait until its command wrote
    ``marker``, then SIGKILL the executor (the run's processes live on)."""
    ex = start_executor(directory)
    try:
        async with ex.channel() as channel:
            call = crontrio_pb2_grpc.ExecutorStub(channel).Run(request, timeout=60)
            first = await asyncio.wait_for(call.read(), 20)
            assert first.HasField("started"), first

            async def marked() -> bool:
                return bool(lines(marker))

            await wait_until(marked, 10.0, "the run to start", interval=0.05)
            ex.proc.kill()  # kill -9: no shutdown, no result journaled
            with pytest.raises(grpc.aio.AioRpcError):
                await read_rest(call)
    finally:
        ex.proc.kill()
        ex.proc.stop()  # closes its log file
    return ex, first.started
