"""Runs one shell task: ``/bin/sh -c <command>`` in its own process group.

The process is started with ``subprocess.Popen`` and watched from the event
loop (a pidfd for its exit, non-blocking reads for its output pipe) rather
than with asyncio's subprocess API: in Python 3.11 ``Process.wait()`` only
returns once every pipe is closed, so a daemonised grandchild holding stdout
would hang the run forever. Here "the shell exited" and "the output ended" are
separate events, and output reading stops after a short drain.

stdout and stderr share one pipe: the output is one stream in the order it was
written, and a run holds two fds in the executor (the pipe and the pidfd)
rather than three, which matters with thousands of runs at once: every spawn
copies the executor's fd table into the child, which closes it again
(close_fds), about 0.7 ms of CPU per spawn at 10,000 fds on a small VM
(bench/RESULTS.md, "5,000 sleeps").

``Popen`` blocks its thread until the child has exec'd (CPython uses vfork, so
the parent waits for the exec), about a millisecond and more on a busy host;
``ShellProcess.start`` therefore spawns on a few dedicated threads, so that a
burst of thousands of runs neither stalls the event loop nor execs one child
at a time.

Exit codes follow Python's convention: a process killed by signal N reports
``-N`` (e.g. -15 for SIGTERM, -9 for SIGKILL).

A task with a ``user`` runs as that OS user (uid, primary gid, supplementary
groups, and HOME, USER, LOGNAME, SHELL from its passwd entry), which needs
an executor running as root; the executor, as root, can still signal its
process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import pwd
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crontrio.executor.workers import Workers

log = logging.getLogger(__name__)

SHELL = "/bin/sh"
# Pipes hand over at most this much per read; Linux pipes hold 64 KiB.
READ_CHUNK = 65536
# How often a terminating group is checked for survivors: there is no event
# for "the last process of a group died", so this one wait is a poll.
_GROUP_POLL_SECONDS = 0.1
# Without pidfd support (non-Linux, old kernels) the exit is polled this often.
_EXIT_POLL_SECONDS = 0.05
# Bound on the check that a run-as user can enter the workdir (a tiny shell).
_ACCESS_CHECK_SECONDS = 10.0
# Threads that spawn shells. A spawning thread mostly waits, with the GIL
# released, for its child's exec or for the GIL itself while the loop is busy,
# so several of them keep the CPUs busy during a burst (measured on 2 busy
# cores: 8 started 5,000 runs sooner than 2 or 4, and about as soon as 16 or 32).
_SPAWN_THREADS = 8

OutputCallback = Callable[[bytes], None]


class TaskStartError(Exception):
    """The task could not be started (missing workdir, no shell, ...)."""


@dataclass(frozen=True)
class RunAs:
    """The OS identity a shell task runs under (``ShellTask.user``)."""

    name: str
    uid: int
    gid: int
    groups: list[int] = field(default_factory=list)  # supplementary, as initgroups would set them
    home: str = ""
    shell: str = ""
    # False when the executor already is this user (not root): nothing to switch.
    switch: bool = True

    @property
    def environment(self) -> dict[str, str]:
        """HOME, USER, LOGNAME and SHELL from the passwd entry."""
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name, "SHELL": self.shell or SHELL}


def resolve_user(name: str) -> RunAs:
    """Look ``name`` up for a run; TaskStartError when it is unknown or the
    executor may not become it. Blocking (NSS may ask a directory server):
    call it in a thread."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise TaskStartError(f"unknown user {name!r}") from None
    euid = os.geteuid()
    if euid != 0 and entry.pw_uid != euid:
        raise TaskStartError(f"cannot run as user {name!r}: the executor is not running as root")
    try:
        groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    except OSError as exc:
        raise TaskStartError(f"cannot run as user {name!r}: reading its groups failed: {exc}") from exc
    return RunAs(
        name=entry.pw_name,
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        groups=groups,
        home=entry.pw_dir,
        shell=entry.pw_shell,
        switch=euid == 0,
    )


def check_workdir(workdir: str, run_as: RunAs | None = None) -> None:
    """TaskStartError unless ``workdir`` (empty: the executor's own) is a
    directory that ``run_as`` can enter. Blocking: call it in a thread.

    The process changes directory before dropping its privileges (that is
    how Popen orders it), so a root executor would happily start a shell in
    a directory its user cannot use; this asks the kernel, as that user, first.
    """
    if workdir and not os.path.isdir(workdir):
        raise TaskStartError(f"workdir {workdir!r} does not exist or is not a directory")
    if run_as is None or not run_as.switch or run_as.uid == 0:
        return
    path = os.path.abspath(workdir or os.getcwd())
    what = f"workdir {path!r}" if workdir else f"the executor's working directory {path!r} (no workdir set)"
    try:
        check = subprocess.run(  # a fixed command: `cd` as that user
            [SHELL, "-c", 'cd -- "$1"', SHELL, path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            env={},
            user=run_as.uid,
            group=run_as.gid,
            extra_groups=run_as.groups,
            timeout=_ACCESS_CHECK_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise TaskStartError(f"cannot check that user {run_as.name!r} can use {what}: {exc}") from exc
    if check.returncode < 0:
        died = f"the check died of signal {-check.returncode}"
        raise TaskStartError(f"cannot check that user {run_as.name!r} can use {what}: {died}")
    if check.returncode != 0:
        raise TaskStartError(f"{what} is not accessible to user {run_as.name!r}")


def task_environment(
    base: Mapping[str, str],
    task_env: Mapping[str, str],
    run_vars: Mapping[str, str],
    run_as: RunAs | None = None,
) -> dict[str, str]:
    """The baseline (executor/task_env.py: never the executor's whole
    environment), plus the run-as user's HOME, USER, LOGNAME and SHELL, plus
    the task's, plus the CRONTRIO_* run variables (last, so a job definition
    cannot spoof them)."""
    env = dict(base)
    if run_as is not None:
        env.update(run_as.environment)
    env.update(task_env)
    env.update(run_vars)
    return env


def group_has_live_member(pgid: int) -> bool:
    """Whether a process group has a member that is not a zombie (Linux
    /proc; elsewhere any member counts as live)."""
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return True
    for pid in entries:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parens.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


class ShellProcess:
    """One running shell task: its process group, its output and its exit."""

    def __init__(self, popen: subprocess.Popen[bytes], on_output: OutputCallback) -> None:
        self._popen = popen
        self.pid = popen.pid
        # start_new_session makes the shell a session and group leader.
        self.pgid = popen.pid
        self._on_output = on_output
        self._loop = asyncio.get_running_loop()
        # Futures rather than tasks or events: thousands of runs wait on
        # these at once, and every object they keep alive is one more for
        # the garbage collector to walk.
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._output_ended: asyncio.Future[None] = self._loop.create_future()
        self._pidfd: int | None = None
        self._exit_poller: asyncio.Task[None] | None = None
        self._terminator: asyncio.Task[None] | None = None
        assert popen.stdout is not None  # PIPE by construction; stderr shares it
        self._fd = popen.stdout.fileno()
        os.set_blocking(self._fd, False)
        self._loop.add_reader(self._fd, self._read)
        self._watch_exit()

    @classmethod
    async def start(
        cls,
        command: str,
        *,
        workdir: str,
        env: Mapping[str, str],
        on_output: OutputCallback,
        run_as: RunAs | None = None,
    ) -> ShellProcess:
        """Start the command (as ``run_as``: its uid, primary gid and
        supplementary groups, when given; see ``resolve_user`` and
        ``check_workdir``, which should be called first), the blocking part
        on a spawning thread (see the module's docstring). Output callbacks
        begin on a later turn of the loop. Cancelled while spawning, it kills
        what the spawn started."""
        spawning = _spawner.run(functools.partial(_popen, command, workdir, env, run_as), _kill_abandoned)
        try:
            popen = await spawning
        except asyncio.CancelledError:
            # Cancelled after the spawn delivered, before we resumed: the
            # process is ours to kill (before that, the spawner kills it).
            if spawning.done() and not spawning.cancelled() and spawning.exception() is None:
                _kill_abandoned(spawning.result())
            raise
        return cls(popen, on_output)

    # -- exit ----------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    async def wait_exit(self) -> int:
        """Wait for the shell itself to exit; returns its exit code."""
        await _done_within(self._exited, None)
        return self._exited.result()

    async def exited_within(self, seconds: float | None) -> bool:
        """Whether the shell exits within ``seconds`` (None: wait for ever)."""
        return await _done_within(self._exited, seconds)

    def _watch_exit(self) -> None:
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self._exit_poller = self._loop.create_task(self._poll_exit())
            return
        self._loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        code = self._popen.poll()
        if code is None:
            return
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if not self._exited.done():
            self._exited.set_result(code)

    async def _poll_exit(self) -> None:
        while not self._exited.done():
            self._reap()
            await asyncio.sleep(_EXIT_POLL_SECONDS)

    # -- output ----------------------------------------------------------------

    def _read(self) -> None:
        try:
            data = os.read(self._fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("pid %d: reading output failed: %s", self.pid, exc)
            data = b""
        if data:
            self._on_output(data)
        else:
            self._stop_reading()

    def _stop_reading(self) -> None:
        if self._output_ended.done():
            return
        self._loop.remove_reader(self._fd)
        self._output_ended.set_result(None)

    async def drain_output(self, within: float) -> bool:
        """Wait up to ``within`` seconds for the output pipe to close, then stop
        reading either way. False when a background process still held it
        (a daemonised child we do not wait for)."""
        drained = await _done_within(self._output_ended, within)
        self._stop_reading()
        self._close_files()
        return drained

    def _close_files(self) -> None:
        if self._popen.stdout is not None:
            self._popen.stdout.close()

    # -- signals ---------------------------------------------------------------

    def signal_group(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to every process of the group; False when none is left."""
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:
            # A member changed its credentials (setuid helper): we cannot
            # signal it, but the group is still there.
            log.warning("pid %d: not allowed to send %s to its process group", self.pid, sig.name)
        return True

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # killpg also "finds" zombies: orphans that nobody has reaped yet,
        # which in a container whose PID 1 is not an init can be forever.
        return group_has_live_member(self.pgid)

    def stop(self, grace: float) -> None:
        """Start ``terminate_group`` unless it is already going."""
        if self._terminator is None:
            self._terminator = self._loop.create_task(self.terminate_group(grace))

    async def stopped(self) -> None:
        """Wait until a termination ``stop`` started is over (at once without one)."""
        if self._terminator is not None:
            await self._terminator

    async def terminate_group(self, grace: float) -> None:
        """TERM the whole group, then KILL whatever is left after ``grace``
        seconds (grandchildren included: they share the group)."""
        if not self.signal_group(signal.SIGTERM):
            return
        deadline = self._loop.time() + grace
        while self._loop.time() < deadline:
            if not await asyncio.to_thread(self._group_alive):
                return
            await asyncio.sleep(_GROUP_POLL_SECONDS)
        if self.signal_group(signal.SIGKILL):
            log.info("pid %d: process group survived SIGTERM for %.1fs, sent SIGKILL", self.pid, grace)

    def close(self) -> None:
        """Release everything; kills the group if it is somehow still there
        (only on an abnormal path such as cancellation)."""
        if not self._exited.done():
            self.signal_group(signal.SIGKILL)
        with contextlib.suppress(Exception):
            self._stop_reading()
        self._close_files()
        if self._exit_poller is not None:
            self._exit_poller.cancel()


async def _done_within(future: asyncio.Future[Any], seconds: float | None) -> bool:
    """Wait until ``future`` is done or ``seconds`` have passed (None: no
    limit); whether it is done. Unlike awaiting it, cancelling the caller
    never cancels it. asyncio.wait does the same at several times the cost,
    paid three times per run, thousands of runs at once."""
    if future.done():
        return True
    waiter = future.get_loop().create_future()
    wake = functools.partial(_resolve, waiter)
    future.add_done_callback(wake)
    timer = future.get_loop().call_later(seconds, wake) if seconds is not None else None
    try:
        await waiter
    finally:
        future.remove_done_callback(wake)
        if timer is not None:
            timer.cancel()
    return future.done()


def _resolve(waiter: asyncio.Future[None], *_: object) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _popen(command: str, workdir: str, env: Mapping[str, str], run_as: RunAs | None) -> subprocess.Popen[bytes]:
    """``/bin/sh -c command`` in a new session (so its group can be signalled
    as a whole), stdout and stderr on one pipe. Blocking: it returns once the
    child has exec'd."""
    if workdir and not os.path.isdir(workdir):
        raise TaskStartError(f"workdir {workdir!r} does not exist or is not a directory")
    switch = run_as if run_as is not None and run_as.switch else None
    try:
        return subprocess.Popen(  # running the job's command is the point
            [SHELL, "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=workdir or None,
            env=dict(env),
            start_new_session=True,
            # None (the default) for each: stay who the executor is. Any of
            # them set makes CPython fork instead of vfork (slower, but only
            # for runs as another user).
            user=switch.uid if switch else None,
            group=switch.gid if switch else None,
            extra_groups=switch.groups if switch else None,
        )
    except OSError as exc:
        who = f" as user {run_as.name!r}" if run_as is not None else ""
        raise TaskStartError(f"cannot start {SHELL}{who}: {exc}") from exc


def _kill_abandoned(popen: subprocess.Popen[bytes]) -> None:
    """Kill the process group of a spawn whose run went away meanwhile (it
    was cancelled), and reap it off the loop."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)
    _spawner.detach(functools.partial(_reap, popen))


def _reap(popen: subprocess.Popen[bytes]) -> None:
    popen.wait()
    if popen.stdout is not None:
        popen.stdout.close()


_spawner = Workers(_SPAWN_THREADS, "spawn")
