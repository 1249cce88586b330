"""`make run`'s launcher, as a user sees it: example jobs fire, Ctrl-C stops everything."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from testing_support.services import REPO, free_port, pid_alive, wait_for, write_conf


def child_pids(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def test_run_trio_seeds_examples_runs_them_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    ports = {n: free_port() for n in ("d", "e", "m", "h")}
    conf = write_conf(
        tmp_path,
        {
            "database": {"path": str(tmp_path / "crontrio.db")},
            "dispatcher": {
                "listen": f"127.0.0.1:{ports['d']}",
                "executors": f"127.0.0.1:{ports['e']}",
                "initial_password_file": str(tmp_path / "initial-admin-password"),
            },
            "executor": {"listen": f"127.0.0.1:{ports['e']}", "journal": str(tmp_path / "journal.db")},
            "monitor": {"listen": f"127.0.0.1:{ports['m']}", "http_listen": f"127.0.0.1:{ports['h']}"},
            "console": {"secret_file": str(tmp_path / "console-secret")},
        },
    )
    log_path = tmp_path / "trio.log"
    with open(log_path, "wb") as log:
        launcher = subprocess.Popen(
            ["bash", str(REPO / "scripts" / "run-trio.sh"), str(conf)],
            cwd=REPO,
            env={**os.environ, "PYTHON": sys.executable},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, like a terminal's foreground job
        )
    try:
        db = tmp_path / "crontrio.db"

        def runs(job: str) -> list[tuple[str, bytes]]:
            with sqlite3.connect(db, timeout=30) as conn:
                return conn.execute("SELECT status, output FROM runs WHERE job_name = ?", (job,)).fetchall()

        wait_for(lambda: db.exists() and any(s == "succeeded" for s, _ in runs("hello-shell")), 30, "hello-shell to succeed")
        _, output = next(r for r in runs("hello-shell") if r[0] == "succeeded")
        assert output.startswith(b"hello from ")

        with sqlite3.connect(db) as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM jobs ORDER BY id")]
            assert names == ["hello-shell", "monitor-healthz"]
            # The HTTP example fires once a minute; make it fire now to see it work.
            conn.execute("UPDATE jobs SET spec = '* * * * * *' WHERE name = 'monitor-healthz'")
        wait_for(lambda: any(s == "succeeded" for s, _ in runs("monitor-healthz")), 15, "the HTTP example to succeed")
        _, body = next(r for r in runs("monitor-healthz") if r[0] == "succeeded")
        assert body.startswith(b"HTTP 200") and b'"status": "ok"' in body

        # It says where the console is and how to log in, and the login works.
        launcher_text = log_path.read_text()
        assert f"web console: http://127.0.0.1:{ports['h']}/" in launcher_text, launcher_text
        password = (tmp_path / "initial-admin-password").read_text().strip()
        assert f"created user 'admin' with password {password}" in launcher_text
        console = f"http://127.0.0.1:{ports['h']}"
        login = httpx.post(console + "/api/v1/login", json={"user": "admin", "password": password}, timeout=30)
        assert login.status_code == 200 and login.json()["role"] == "admin"

        services = child_pids(launcher.pid)
        assert len(services) == 3, services
        os.killpg(launcher.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        assert launcher.wait(30) in (0, 130)
        wait_for(lambda: not any(pid_alive(p) for p in services), 15, "all three services to exit")
        text = log_path.read_text()
        for line in ("dispatcher stopped", "monitor stopped", "executor stopped"):
            assert line in text, text
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait(5)

    # Running the launcher's migrate step again must not bring examples back.
    with sqlite3.connect(tmp_path / "crontrio.db") as conn:
        conn.execute("DELETE FROM jobs")
    subprocess.run(
        [sys.executable, "-m", "crontrio.monitor", "-c", str(conf), "migrate", "--examples"], cwd=REPO, check=True, timeout=60
    )
    with sqlite3.connect(tmp_path / "crontrio.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone() == (0,)
