"""Alerts end to end: a failing job mails, texts and posts exactly what it is
configured to, through a real SMTP server and a local HTTP gateway."""

from __future__ import annotations

import email
import http.server
import json
import threading
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from testing_support.services import free_port, wait_for
from testing_support.trio import Trio, make_trio, stop_trio


class MailBox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


class Gateway:
    """Collects SMS-gateway and webhook calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                gateway.calls.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def to(self, path: str) -> list[dict[str, Any]]:
        return [body for p, body in self.calls if p == path]


@pytest.fixture
def alerting(tmp_path: Path) -> Iterator[tuple[Trio, MailBox, Gateway]]:
    mailbox, gateway = MailBox(), Gateway()
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
                "sms_url": f"{gateway.url}/sms",
                "webhook_url": f"{gateway.url}/hook",
                "webhook_format": "slack",
                "throttle_seconds": "60",
                "retries": "1",
                "system_emails": "ops",
            },
            "alarm_mail_list": {"ops": "ops@example.com"},
            "monitor": {"missed_after_seconds": "3", "reconcile_interval_seconds": "0.5"},
        },
    )
    try:
        yield trio, mailbox, gateway
    finally:
        stop_trio(trio)
        smtp.stop()
        gateway.server.shutdown()


def test_failing_job_sends_exactly_the_configured_alerts_and_throttles(alerting: tuple[Trio, MailBox, Gateway]) -> None:
    trio, mailbox, gateway = alerting
    for service in ("executor", "dispatcher", "monitor"):
        trio.start(service)
    add = trio.cronctl(
        "job",
        "add",
        "--name",
        "breaks",
        "--spec",
        "* * * * * *",
        "--command",
        "echo disk is full; exit 3",
        "--notify",
        "on_failure",
        "--notify-email",
        "ops",
        "--notify-phone",
        "+15550100",
        "--notify-channel",
        "email",
        "--notify-channel",
        "webhook",
    )
    assert add.returncode == 0, add.stderr
    quiet = trio.cronctl("job", "add", "--name", "fine", "--spec", "* * * * * *", "--command", "true", "--notify", "on_failure")
    assert quiet.returncode == 0, quiet.stderr

    wait_for(
        lambda: len(trio.sql("SELECT 1 FROM runs WHERE job_name = 'breaks' AND status = 'failed'")) >= 4,
        20,
        "four failed runs (the later ones throttled)",
    )
    run_mails = wait_for(lambda: [m for m in mailbox.messages if "job breaks" in m["Subject"]], 10, "the alert mail")
    hooks = wait_for(lambda: gateway.to("/hook"), 10, "the webhook call")
    (mail,) = run_mails  # one mail: the next three failures were throttled
    assert mail["To"] == "ops@example.com" and mail["From"] == "crontrio@test"
    body = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    for expected in ("breaks", "failed", "Exit code", "3", "disk is full"):
        assert expected in body, (expected, body)
    assert len(hooks) == 1 and "breaks" in hooks[0]["text"] and "failed" in hooks[0]["text"]
    assert gateway.to("/sms") == [], "sms was not among the job's channels"
    assert not [m for m in mailbox.messages if "job fine" in m["Subject"]]


def test_monitor_sends_a_system_alert_when_an_executor_dies(alerting: tuple[Trio, MailBox, Gateway]) -> None:
    trio, mailbox, gateway = alerting
    trio.start("executor")
    monitor = trio.start("monitor")
    wait_for(lambda: f"executor {trio.executor} is UP" in monitor.log_text(), 10, "the executor to be seen UP")
    assert trio.procs.pop("executor").stop() == 0
    mails = wait_for(
        lambda: [m for m in mailbox.messages if f"executor {trio.executor} is down" in m["Subject"]], 15, "the executor-down mail"
    )
    assert mails[0]["To"] == "ops@example.com"
    wait_for(lambda: any("is down" in h.get("text", "") for h in gateway.to("/hook")), 10, "the executor-down webhook")


def test_monitor_alerts_on_a_dispatcher_gone_and_on_missed_firings(alerting: tuple[Trio, MailBox, Gateway]) -> None:
    trio, mailbox, _ = alerting
    trio.start("executor")
    trio.start("dispatcher")
    monitor = trio.start("monitor")
    added = trio.cronctl(
        "job",
        "add",
        "--name",
        "ticks",
        "--spec",
        "* * * * * *",
        "--command",
        "true",
        "--notify",
        "on_failure",
        "--notify-email",
        "ops",
        "--notify-channel",
        "email",
    )
    assert added.returncode == 0, added.stderr
    wait_for(lambda: "is at job revision" in monitor.log_text(), 10, "the monitor to reach the dispatcher")
    assert trio.procs.pop("dispatcher").stop() == 0  # nobody fires now

    def subjects() -> list[str]:
        return [str(m["Subject"]) for m in mailbox.messages]

    wait_for(lambda: any("dispatcher" in s and "is down" in s for s in subjects()), 20, "the dispatcher-down mail")
    # Firings nobody ran are recorded missed after missed_after_seconds (3 s here), with a system
    # alert, and the job's own alert (its policy covers missed firings).
    wait_for(lambda: any("job ticks missed a firing" in s for s in subjects()), 20, "the missed-firing system alert")
    wait_for(
        lambda: any("job ticks" in s and "missed" in s and s != "[crontrio] job ticks missed a firing" for s in subjects()),
        20,
        "the job's own missed alert",
    )
    assert trio.sql("SELECT COUNT(*) FROM runs WHERE job_name = 'ticks' AND status = 'missed'")[0][0] >= 1
