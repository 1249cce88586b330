"""The trio as real processes, on free ports, in a temp dir, in embedded mode (tests/e2e fixtures, tests/package)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from testing_support.services import REPO, ServiceProcess, free_port, is_serving, wait_for, write_conf


@dataclass
class Trio:
    root: Path
    conf: Path
    dispatcher: str
    executor: str
    monitor: str
    db_path: Path
    procs: dict[str, ServiceProcess] = field(default_factory=dict)

    executor2: str = ""

    def start(self, service: str) -> ServiceProcess:
        env = None
        if service == "executor2":  # a second executor, same conf, own port and journal
            env = {
                "CRONTRIO_EXECUTOR_LISTEN": self.executor2,
                "CRONTRIO_EXECUTOR_JOURNAL": str(self.root / "journal2.db"),
                "CRONTRIO_EXECUTOR_METRICS_LISTEN": "",  # the first one's port
            }
        proc = ServiceProcess(service.rstrip("2"), self.conf, self.root / f"{service}.log", env=env)
        self.procs[service] = proc
        address = {
            "dispatcher": self.dispatcher,
            "executor": self.executor,
            "executor2": self.executor2,
            "monitor": self.monitor,
        }[service]
        try:
            wait_for(lambda: proc.proc.poll() is None and is_serving(address), 20, f"{service} on {address} to serve")
        except AssertionError:
            raise AssertionError(f"{service} did not start; its log:\n{proc.log_text()}") from None
        return proc

    def migrate(self) -> None:
        """Create the schema, as `python -m crontrio.monitor migrate` does for an operator."""
        subprocess.run(
            [sys.executable, "-m", "crontrio.monitor", "-c", str(self.conf), "migrate"], cwd=self.root, check=True, timeout=60
        )

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Plain SQL on the store, as an operator would type it."""
        with sqlite3.connect(self.db_path, timeout=30) as conn:
            rows = conn.execute(statement, params).fetchall()
            conn.commit()
        return rows

    def cronctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "crontrio.cronctl.main", "--server", self.dispatcher, *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def logs(self) -> str:
        return "\n".join(f"===== {name}\n{p.log_text()}" for name, p in self.procs.items())


def make_trio(tmp_path: Path, executors: int = 1, extra: dict[str, dict[str, str]] | None = None) -> Trio:
    ports = {name: free_port() for name in ("dispatcher", "executor", "executor2", "monitor", "http")}
    executor_list = [f"127.0.0.1:{ports['executor']}"] + ([f"127.0.0.1:{ports['executor2']}"] if executors > 1 else [])
    conf = write_conf(
        tmp_path,
        {
            "database": {"driver": "sqlite", "path": str(tmp_path / "crontrio.db")},
            "dispatcher": {
                "listen": f"127.0.0.1:{ports['dispatcher']}",
                "executors": ", ".join(executor_list),
                "shutdown_grace_seconds": "5",
            },
            "executor": {
                "listen": f"127.0.0.1:{ports['executor']}",
                "journal": str(tmp_path / "journal.db"),
                "kill_grace_seconds": "1",
            },
            "monitor": {
                "listen": f"127.0.0.1:{ports['monitor']}",
                "http_listen": f"127.0.0.1:{ports['http']}",
                "poll_interval_seconds": "0.2",
                "health_interval_seconds": "0.5",
            },
            "log": {"level": "DEBUG"},
        },
        extra,
    )
    return Trio(
        root=tmp_path,
        conf=conf,
        dispatcher=f"127.0.0.1:{ports['dispatcher']}",
        executor=f"127.0.0.1:{ports['executor']}",
        monitor=f"127.0.0.1:{ports['monitor']}",
        db_path=tmp_path / "crontrio.db",
        executor2=f"127.0.0.1:{ports['executor2']}" if executors > 1 else "",
    )


def stop_trio(t: Trio) -> None:
    codes = {name: p.stop() for name, p in t.procs.items()}
    bad = {name: code for name, code in codes.items() if code != 0}
    print(t.logs())  # shown by pytest only when the test failed
    assert not bad, f"services did not stop cleanly on SIGTERM: {bad}"
