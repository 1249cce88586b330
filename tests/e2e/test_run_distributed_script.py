"""scripts/run-distributed.sh (`make run-distributed`) as its README says: a
dispatcher `kill -9`ed leaves the rest running and firing; Ctrl-C stops the
services in order (monitor, dispatchers, executors) before etcd, Redis and
MariaDB, with each service's shutdown lines kept in its log, and leaves no
process behind. Run on a temp dir and free ports (DIST_* env)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing_support.services import free_port, pid_alive, wait_for

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("monitor", "d1", "d2", "e1", "e2")
SERVERS = ("etcd", "redis", "mariadb")
pytestmark = pytest.mark.xdist_group("run_distributed")


def processes_under(directory: Path) -> list[str]:
    """Command lines of live processes that name `directory` (servers, log followers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not pid_alive(int(entry.name)):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(directory) in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, dict[str, str]]]:
    top = tmp_path / "distributed"
    ports = {name: str(free_port()) for name in ("DB", "REDIS", "ETCD", "ETCD_PEER", "D1", "D2", "E1", "E2", "MONITOR", "HTTP")}
    env = {
        **os.environ,
        "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin",
        "PYTHON": sys.executable,
        "DIST_DIR": str(top),
        "DIST_METRICS_PORTS": " ".join(str(free_port()) for _ in range(4)),
        **{f"DIST_{name}_PORT": port for name, port in ports.items()},
    }
    script = subprocess.Popen(
        ["bash", "scripts/run-distributed.sh"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "terminal.log").open("wb"),
        start_new_session=True,  # its own process group, as a terminal's foreground job
        # As from a terminal: SIGINT not ignored (a test runner started in the
        # background inherits it ignored, and bash cannot trap it then).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        yield script, top, ports
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGINT)
            script.wait(120)
        for line in processes_under(top):  # never leave servers behind, even when the test failed
            os.kill(int(line.split(":")[0]), signal.SIGKILL)


def cronctl(ports: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    servers = ["--server", f"127.0.0.1:{ports['D1']}", "--server", f"127.0.0.1:{ports['D2']}"]
    return subprocess.run(
        [sys.executable, "-m", "crontrio.cronctl.main", *servers, *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def tick_runs(ports: dict[str, str], after_ms: int = 0) -> list[dict[str, object]]:
    listed = cronctl(ports, "run", "list", "--job", "tick", "--json", "--limit", "200")
    if listed.returncode != 0:
        return []
    runs = json.loads(listed.stdout)
    return [r for r in runs if r["status"] == "succeeded" and _ms(str(r["scheduled"])) > after_ms]


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def test_a_killed_dispatcher_leaves_the_rest_firing_and_ctrl_c_stops_in_order(
    cluster: tuple[subprocess.Popen[bytes], Path, dict[str, str]],
) -> None:
    script, top, ports = cluster
    script_log = top / "run-distributed.log"
    wait_for(lambda: script_log.exists() and " up: " in script_log.read_text(), 180, "the cluster to come up")
    pids = {name: int((top / f"{name}.pid").read_text()) for name in SERVICES + SERVERS}
    added = cronctl(ports, "job", "add", "--name", "tick", "--spec", "* * * * * *", "--command", "true")
    assert added.returncode == 0, added.stderr
    wait_for(lambda: tick_runs(ports), 30, "tick to run")

    os.kill(pids["d1"], signal.SIGKILL)
    killed_ms = time.time_ns() // 1_000_000
    wait_for(lambda: "d1 (pid" in script_log.read_text(), 15, "the script to report d1 gone")
    assert "the others keep running" in script_log.read_text()

    # The rest keeps firing: runs scheduled after the kill, fired by d2.
    def by_d2() -> list[dict[str, object]]:
        return [r for r in tick_runs(ports, killed_ms + 2000) if str(r["dispatcher"]).startswith("d2@")]

    assert len(wait_for(lambda: by_d2() if len(by_d2()) >= 3 else None, 40, "d2 to go on firing tick")) >= 3
    assert script.poll() is None
    assert all(pid_alive(pids[name]) for name in SERVICES + SERVERS if name != "d1")

    os.killpg(script.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the foreground process group
    assert script.wait(120) == 130
    steps = [line.split(" ", 2)[2] for line in script_log.read_text().splitlines()]
    stops = [s for s in steps if s.startswith("stopping ")]
    assert stops == [f"stopping {stage}" for stage in ("monitor", "d1 d2", "e1 e2", "etcd", "redis", "mariadb")]
    stopped = [s.split()[0] for s in steps if " stopped (exit " in s]
    assert stopped == ["monitor", "d2", "e1", "e2", "etcd", "redis", "mariadb"], steps  # d1 was collected when it died
    assert steps[-1] == "all stopped"
    assert not [s for s in steps if "did not stop within" in s], steps  # every one stopped on TERM within the grace period
    # Each service's log holds its own shutdown lines.
    assert "monitor stopped" in (top / "monitor.log").read_text()
    assert "dispatcher stopped" in (top / "d2.log").read_text()
    for name in ("e1", "e2"):
        assert "executor stopped" in (top / f"{name}.log").read_text(), name
    assert not [name for name, pid in pids.items() if pid_alive(pid)]
    assert processes_under(top) == []
