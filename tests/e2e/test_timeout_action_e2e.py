"""timeout_action end to end, with a real mail sink: "alert" reports a run past
its timeout once and lets it run to its real end; "kill" kills it as ever;
and when the dispatcher following an overrunning run dies, the monitor
reports the overrun instead (still once)."""

from __future__ import annotations

import email
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from testing_support.services import free_port, wait_for
from testing_support.trio import Trio, make_trio, stop_trio


class MailBox:
    """Every mail received, with when it arrived (epoch ms)."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((time.time_ns() // 1_000_000, email.message_from_bytes(envelope.content)))
        return "250 OK"

    def about(self, text: str) -> list[tuple[int, Message]]:
        return [(at, m) for at, m in self.messages if text in str(m["Subject"])]


@pytest.fixture
def alerting(tmp_path: Path) -> Iterator[tuple[Trio, MailBox]]:
    mailbox = MailBox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    trio = make_trio(
        tmp_path,
        extra={
            "alert": {
                "smtp_host": "127.0.0.1",
                "smtp_port": str(smtp.port),
                "smtp_security": "none",
                "mail_from": "crontrio@test",
                "retries": "1",
            },
            "alarm_mail_list": {"ops": "ops@example.com"},
            "monitor": {"reconcile_interval_seconds": "0.5"},
        },
    )
    try:
        yield trio, mailbox
    finally:
        stop_trio(trio)
        smtp.stop()


def add_slow_job(trio: Trio, name: str, action: str, sleep_seconds: int = 3, timeout: int = 1) -> None:
    added = trio.cronctl(
        "job", "add", "--name", name, "--spec", "0 0 1 1 *",
        "--command", f"sleep {sleep_seconds}; echo done",
        "--timeout", str(timeout), "--timeout-action", action,
        "--notify", "on_failure", "--notify-email", "ops", "--notify-channel", "email",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr


def run_now(trio: Trio, name: str) -> str:
    fired = trio.cronctl("job", "run", name, "--json")
    assert fired.returncode == 0, fired.stderr
    rows = wait_for(lambda: trio.sql("SELECT run_id FROM runs WHERE job_name = ?", (name,)), 10, f"a run of {name}")
    return str(rows[0][0])


def finished(trio: Trio, run_id: str) -> tuple[Any, ...]:
    def row() -> tuple[Any, ...] | None:
        rows = trio.sql(
            "SELECT status, exit_code, started_ms, finished_ms, overrun_ms, error, output FROM runs WHERE run_id = ?", (run_id,)
        )
        return rows[0] if rows and rows[0][0] not in ("pending", "running") else None

    return wait_for(row, 20, f"run {run_id} to end")


def test_alert_reports_the_overrun_once_and_records_the_real_end(alerting: tuple[Trio, MailBox]) -> None:
    trio, mailbox = alerting
    for service in ("executor", "dispatcher", "monitor"):
        trio.start(service)
    add_slow_job(trio, "slow", "alert")
    shown = trio.cronctl("job", "show", "slow", "--json")
    assert '"timeout_action": "alert"' in shown.stdout, shown.stdout
    run_id = run_now(trio, "slow")

    overrun_mails = wait_for(lambda: mailbox.about("overran"), 15, "the overrun mail")
    status, exit_code, started_ms, finished_ms, overrun_ms, error, output = finished(trio, run_id)
    assert (status, exit_code) == ("succeeded", 0), error
    assert b"done" in output  # not killed: the command ran to its end
    assert finished_ms - started_ms >= 3000  # its real duration
    assert started_ms + 1000 <= overrun_ms < finished_ms
    assert "overran its 1s timeout" in error
    ((mailed_at, mail),) = overrun_mails
    assert mailed_at < finished_ms, "the overrun mail came while the run was still going"
    assert mail["To"] == "ops@example.com" and "job slow" in mail["Subject"] and "still running" in mail["Subject"]
    assert run_id in mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    shown_run = trio.cronctl("run", "show", run_id, "--json")
    assert '"overran": "' in shown_run.stdout, shown_run.stdout
    listed = trio.cronctl("run", "list", "--job", "slow")
    assert "succeeded (overran)" in listed.stdout, listed.stdout
    assert len(mailbox.about("overran")) == 1
    assert not mailbox.about("job slow succeeded") and not mailbox.about("job slow failed")


def test_kill_still_kills_at_the_timeout(alerting: tuple[Trio, MailBox]) -> None:
    trio, mailbox = alerting
    for service in ("executor", "dispatcher", "monitor"):
        trio.start(service)
    add_slow_job(trio, "slow", "kill")
    run_id = run_now(trio, "slow")
    status, _exit_code, started_ms, finished_ms, overrun_ms, _error, output = finished(trio, run_id)
    assert status == "timeout"
    assert finished_ms - started_ms < 3000 and b"done" not in output
    assert overrun_ms == 0
    wait_for(lambda: mailbox.about("job slow timeout"), 15, "the timeout alert")
    assert not mailbox.about("overran")


def test_monitor_reports_the_overrun_when_its_dispatcher_died(alerting: tuple[Trio, MailBox]) -> None:
    trio, mailbox = alerting
    for service in ("executor", "dispatcher", "monitor"):
        trio.start(service)
    add_slow_job(trio, "orphan", "alert", sleep_seconds=15, timeout=6)
    # The dispatcher's timer would report at 6 s; kill it (as a crash) once the
    # run is going, so that only the monitor's scan can report the overrun.
    run_id = run_now(trio, "orphan")
    wait_for(lambda: trio.sql("SELECT 1 FROM runs WHERE run_id = ? AND started_ms > 0", (run_id,)), 10, "the run to start")
    trio.procs.pop("dispatcher").kill()
    overrun_ms = trio.sql("SELECT overrun_ms FROM runs WHERE run_id = ?", (run_id,))[0][0]
    assert overrun_ms == 0, "the dispatcher reported the overrun before it was killed: the monitor's path was not tested"
    wait_for(lambda: mailbox.about("overran"), 20, "the monitor's overrun mail")
    assert "overran" in trio.procs["monitor"].log_text()
    (row,) = trio.sql("SELECT status, overrun_ms FROM runs WHERE run_id = ?", (run_id,))
    assert row[0] == "running" and row[1] > 0
    # Its real end is collected by the monitor from the executor, the overrun noted.
    status, exit_code, started_ms, finished_ms, _overrun_ms, error, output = finished(trio, run_id)
    assert (status, exit_code, b"done" in output) == ("succeeded", 0, True)
    assert finished_ms - started_ms >= 15000 and "overran its timeout" in error
    assert len(mailbox.about("overran")) == 1
