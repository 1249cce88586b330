"""Crash recovery: what is left of runs that died with a previous executor
process (docs/ARCHITECTURE.md, failure cases).

The start of every run is journaled before its process is spawned, so a run
journaled as started but not finished when the executor starts died with the
previous process (kill -9, OOM, reboot). executor/runs.py turns each into a
``lost`` result (``RunTable.recover``); this module builds that result and
ends what is left of a shell run's process group, found by scanning /proc and
signalled only when it provably belongs to the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Sequence

from crontrio.common import status
from crontrio.executor.journal import StartedRun
from crontrio.protos import crontrio_pb2

log = logging.getLogger(__name__)

# The error of a run that died with the executor process running it.
LOST_ERROR = "executor restarted during the run (previous process died); the task may have been interrupted"
# How often an orphaned process group being killed is checked for survivors.
_ORPHAN_POLL_SECONDS = 0.05


async def end_orphans(interrupted: Sequence[StartedRun], grace: float) -> list[str]:
    """End what is left of each interrupted run (shell runs only, in
    threads, all at once); what happened to each, for its error text."""
    return list(
        await asyncio.gather(
            *(
                asyncio.to_thread(end_orphan, run.run_id, run.pid, grace) if run.task == "shell" else _no_note()
                for run in interrupted
            )
        )
    )


def lost_result(run: StartedRun, note: str, *, finished_ms: int, host: str, address: str) -> crontrio_pb2.RunFinished:
    """The ``lost`` result of a run that died with a previous executor process."""
    return crontrio_pb2.RunFinished(
        run_id=run.run_id,
        status=status.LOST,
        exit_code=0,
        started_ms=run.started_ms,
        finished_ms=finished_ms,
        error=f"{LOST_ERROR}; {note}" if note else LOST_ERROR,
        pid=run.pid,
        host=run.host or host,
        executor=run.executor or address,
    )


async def _no_note() -> str:
    return ""


def _live_group_members(pgid: int) -> list[int]:
    """The pids of a process group's members that are not zombies (Linux /proc)."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parens.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(entry.name))
    return members


def _runs_for(pid: int, run_id: str) -> bool:
    """Whether process ``pid`` was started for ``run_id`` (its environment
    holds our CRONTRIO_RUN_ID); False when that cannot be read."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read()
    except OSError:
        return False
    return f"CRONTRIO_RUN_ID={run_id}".encode() in environ.split(b"\0")


def end_orphan(run_id: str, pgid: int, grace: float) -> str:
    """Kill what is left of a shell run whose executor died: its process
    group (the shell ran with start_new_session, so pgid = its pid), TERM then
    KILL after ``grace`` seconds, but only when a live member of the group
    provably belongs to the run. A pgid cannot be reused while any process of
    the group lives, and a reused pid would not carry this run's id, so
    nothing else is ever signalled. Blocking: run it in a thread. Returns what
    happened, for the run's error text.
    """
    if pgid <= 0:
        return "its process id was never journaled, so no leftover process was looked for"
    try:
        members = _live_group_members(pgid)
    except OSError as exc:
        return f"its process group {pgid} could not be checked ({exc}); left alone"
    if not members:
        return f"its process group {pgid} was no longer running"
    if not any(_runs_for(pid, run_id) for pid in members):
        return f"process group {pgid} is alive but could not be verified as this run's (pid reused?); left alone"
    log.warning("run %s: its process group %d outlived the executor; killing it", run_id, pgid)
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return f"its process group {pgid} was no longer running"
    except PermissionError:
        return f"its process group {pgid} was still running but could not be signalled (permission denied)"
    deadline = time.monotonic() + grace
    while (alive := _live_group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(_ORPHAN_POLL_SECONDS)
    if alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        return f"its process group {pgid} was still running and was killed (SIGKILL after {grace:g}s)"
    return f"its process group {pgid} was still running and was killed"
