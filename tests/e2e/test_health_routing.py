"""The monitor's health checks take a dead executor out of the dispatchers' routing."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from testing_support.services import ServiceProcess, free_port, is_serving, wait_for, write_conf


def test_dead_executor_is_taken_out_of_routing(tmp_path: Path) -> None:
    ports = {n: free_port() for n in ("d", "e1", "e2", "m")}
    e1, e2 = f"127.0.0.1:{ports['e1']}", f"127.0.0.1:{ports['e2']}"
    conf = write_conf(
        tmp_path,
        {
            "database": {"path": str(tmp_path / "db.sqlite")},
            "dispatcher": {"listen": f"127.0.0.1:{ports['d']}", "executors": f"{e1}, {e2}"},  # e2 never starts
            "executor": {"listen": e1, "journal": str(tmp_path / "journal.db")},
            "monitor": {"listen": f"127.0.0.1:{ports['m']}", "http_listen": "", "health_interval_seconds": "0.3"},
        },
    )
    procs = {name: ServiceProcess(name, conf, tmp_path / f"{name}.log") for name in ("executor", "dispatcher", "monitor")}
    try:
        for name, address in (
            ("executor", e1),
            ("dispatcher", f"127.0.0.1:{ports['d']}"),
            ("monitor", f"127.0.0.1:{ports['m']}"),
        ):
            proc = procs[name]
            wait_for(lambda proc=proc, address=address: proc.proc.poll() is None and is_serving(address), 20, f"{name} up")
        wait_for(
            lambda: f"executors out of routing (failing health checks): {e2}" in procs["dispatcher"].log_text(),
            10,
            "the dispatcher to take e2 out of routing",
        )
        after_ms = int(time.time() * 1000)
        with sqlite3.connect(tmp_path / "db.sqlite") as conn:
            conn.execute("INSERT INTO jobs (name, spec, command) VALUES ('tick', '* * * * * *', 'true')")

        def runs() -> list[tuple[str, str]]:
            with sqlite3.connect(tmp_path / "db.sqlite") as conn:
                return conn.execute(
                    "SELECT status, executor FROM runs WHERE scheduled_ms > ? AND status NOT IN ('pending', 'running')",
                    (after_ms,),
                ).fetchall()

        def six_finished() -> list[tuple[str, str]] | None:
            finished = runs()
            return finished if len(finished) >= 6 else None

        done = wait_for(six_finished, 20, "six finished runs")
        # Round-robin over two executors would send every other run to the dead one.
        assert done == [("succeeded", e1)] * len(done)
    finally:
        for proc in procs.values():
            proc.stop()
