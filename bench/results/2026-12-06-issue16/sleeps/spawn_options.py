"""What one shell spawn costs, by subprocess option, from a process holding
EXTRA_FDS open fds (as an executor with EXTRA_FDS / 2 runs going does).

    python spawn_options.py EXTRA_FDS SPAWNS

Each spawn is `sh -c "exit 0"`, waited for before the next; "own" is this
process's CPU per spawn, "children" the reaped shells' (the vfork child's
work before exec counts there).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8", "USER": "root"}
ARGV = ["/bin/sh", "-c", "exit 0"]


def popen(close_fds: bool) -> None:
    p = subprocess.Popen(
        ARGV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=ENV,
        start_new_session=True,
        close_fds=close_fds,
    )
    p.wait()
    assert p.stdout is not None
    p.stdout.close()


def posix_spawn() -> None:
    r, w = os.pipe()
    actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDWR, 0), (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)]
    pid = os.posix_spawn(ARGV[0], ARGV, ENV, setsid=True, file_actions=actions)
    os.close(w)
    os.waitpid(pid, 0)
    os.close(r)


def main() -> None:
    extra, n = int(sys.argv[1]), int(sys.argv[2])
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held = [os.pipe() for _ in range(extra // 2)]
    options: list[tuple[str, Callable[[], None]]] = [
        ("popen close_fds", lambda: popen(True)),
        ("popen no close_fds", lambda: popen(False)),
        ("posix_spawn setsid", posix_spawn),
    ]
    for name, spawn in options * 2:
        t0 = os.times()
        for _ in range(n):
            spawn()
        t1 = os.times()
        own = (t1.user + t1.system - t0.user - t0.system) / n * 1000
        children = (t1.children_user + t1.children_system - t0.children_user - t0.children_system) / n * 1000
        print(f"fds {extra:5d} {name:20s} own {own:.3f} ms  children {children:.3f} ms")
    del held


if __name__ == "__main__":
    main()
