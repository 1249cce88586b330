"""Alert channels against real servers: aiosmtpd (plain, STARTTLS + AUTH, implicit
TLS), a local HTTP server standing in for SMS gateways and chat webhooks, and a
socket that accepts connections and never answers. No mocks."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import logging
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import pytest_asyncio
from aiosmtpd import smtp as aiosmtp
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from crontrio.common import status as st
from crontrio.common.alerts import Alert, AlertSender, run_alert, system_alert
from crontrio.common.config import AlertConfig
from crontrio.common.model import Job, RunRecord
from testing_support.services import free_port, wait_until

LOGGER = "crontrio.common.alerts.sender"
USER, PASSWORD = "alice", "s3cret"


# ------------------------------------------------------------------ helpers


async def until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    await wait_until(condition, timeout, what, interval=0.01)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]


def sample_job() -> Job:
    return Job(name="backup-db", spec="*/5 * * * *", command="/usr/local/bin/backup", id=7, retries=3)


def sample_run(**changes: Any) -> RunRecord:
    output = "\n".join(f"line {i}: copying chunk" for i in range(30)).encode() + b'\nFATAL: disk "full"\n'
    run = RunRecord(
        run_id="7-1700000000000-2",
        job_id=7,
        job_name="backup-db",
        scheduled_ms=1_700_000_000_000,
        attempt=2,
        status=st.FAILED,
        executor="exec-1",
        host="worker-3",
        exit_code=3,
        started_ms=1_700_000_000_250,
        finished_ms=1_700_000_012_750,
        output=output,
        error="exit status 3",
    )
    return dataclasses.replace(run, **changes)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours *_PROXY variables; every server here is local."""
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")


@pytest_asyncio.fixture
async def make_sender() -> AsyncIterator[Callable[..., AlertSender]]:
    """Build and start AlertSenders; each is closed at teardown."""
    senders: list[AlertSender] = []

    def make(mail_lists: dict[str, str] | None = None, sender_kw: dict[str, Any] | None = None, **cfg: Any) -> AlertSender:
        cfg.setdefault("throttle_seconds", 0)
        cfg.setdefault("retries", 0)
        kw: dict[str, Any] = {"retry_backoff": 0.01, "timeout": 5.0, **(sender_kw or {})}
        sender = AlertSender(AlertConfig(**cfg), mail_lists or {}, **kw)
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        await sender.close(timeout=2)


# ------------------------------------------------------------- SMTP servers


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    authenticated: bool
    tls: bool


class Collector:
    """aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Received] = []

    async def handle_DATA(self, server: aiosmtp.SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                message=message,
                authenticated=bool(session.authenticated),
                tls=session.ssl is not None,
            )
        )
        return "250 OK"


def authenticator(server: aiosmtp.SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost, made with the openssl CLI."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*certificate)
    return ctx


@pytest.fixture
def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., tuple[int, Collector]]]:
    """Start aiosmtpd Controllers on free ports (kwargs go to the Controller); stopped at teardown."""
    controllers: list[Controller] = []

    def start(**kwargs: Any) -> tuple[int, Collector]:
        collector = Collector()
        port = free_port()
        controller = Controller(collector, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return port, collector

    yield start
    for controller in controllers:
        controller.stop()


# ------------------------------------------------------------- HTTP server


@dataclass
class Hit:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpRecorder:
    """A real HTTP server recording every request; answers are scripted per path."""

    base: str = ""
    hits: list[Hit] = field(default_factory=list)
    script: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]


@pytest.fixture
def http_server() -> Iterator[HttpRecorder]:
    recorder = HttpRecorder()

    class Handler(BaseHTTPRequestHandler):
        def handle_any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            with recorder.lock:
                recorder.hits.append(
                    Hit(self.command, url.path, parse_qs(url.query), {k.lower(): v for k, v in self.headers.items()}, body)
                )
                script = recorder.script.get(url.path)
                code, text = script.pop(0) if script else (200, '{"errcode": 0, "errmsg": "ok"}')
            raw = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = handle_any  # noqa: N815 - http.server's names

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="alert-http", daemon=True)
    thread.start()
    yield recorder
    server.shutdown()
    server.server_close()
    thread.join(5)


# ------------------------------------------------------------------- email


async def test_email_plain_carries_the_run(make_sender, smtp_server) -> None:
    port, box = smtp_server()
    sender = make_sender(
        mail_lists={"ops": "ops1@example.com, ops2@example.com"},
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        mail_from="Crontrio <crontrio@example.com>",
    )
    assert sender.channels_available() == ["email"]
    await sender.start()
    started = time.monotonic()
    sender.submit(run_alert(sample_job(), sample_run(), retries_used=2), emails=["ops", "dev@example.com", "OPS1@example.com"])
    assert time.monotonic() - started < 0.05
    assert await sender.flush(10)

    assert len(box.messages) == 1
    got = box.messages[0]
    assert got.mail_from == "crontrio@example.com"
    assert got.rcpt_tos == ["ops1@example.com", "ops2@example.com", "dev@example.com"]
    msg = got.message
    assert msg["From"] == "Crontrio <crontrio@example.com>"
    assert [a.strip() for a in str(msg["To"]).split(",")] == ["ops1@example.com", "ops2@example.com", "dev@example.com"]
    assert msg["Subject"] == "[crontrio] job backup-db failed (run 7-1700000000000-2, exit code 3)"
    assert msg["Date"] and msg["Message-ID"].endswith("@example.com>")
    assert msg["Auto-Submitted"] == "auto-generated"
    body = msg.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    for expected in (
        "Job:        backup-db",
        "Run:        7-1700000000000-2",
        "Status:     failed",
        "Executor:   exec-1",
        "Scheduled:  2023-11-14T22:13:20.000Z",
        "Started:    2023-11-14T22:13:20.250Z",
        "Finished:   2023-11-14T22:13:32.750Z",
        "Duration:   12.500s",
        "Exit code:  3",
        "Retries:    2 of 3",
        "exit status 3",
        'FATAL: disk "full"',
        "line 29: copying chunk",
        "line 11: copying chunk",
    ):
        assert expected in text, (expected, text)
    assert "line 10: copying chunk" not in text  # only the last 20 lines of output
    assert sender.sent == 1 and sender.failed == 0


async def test_email_skipped_without_recipients_and_unknown_names_logged_once(make_sender, smtp_server, caplog) -> None:
    caplog.set_level(logging.INFO)
    port, box = smtp_server()
    sender = make_sender(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
    await sender.start()
    for _ in range(3):
        sender.submit(system_alert("k", "hello", "body"), emails=["no-such-list"])
    sender.submit(system_alert("k", "hello", "body"))  # no recipients at all
    assert await sender.flush(5)
    assert box.messages == [] and sender.sent == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER and "no-such-list" in r.getMessage()]
    assert len(warnings) == 1


async def test_email_starttls_with_login(make_sender, smtp_server, server_tls, client_tls) -> None:
    port, box = smtp_server(tls_context=server_tls, require_starttls=True, authenticator=authenticator, auth_required=True)
    sender = make_sender(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="starttls",
        smtp_username=USER,
        smtp_password=PASSWORD,
        sender_kw={"ssl_context": client_tls},
    )
    await sender.start()
    sender.submit(
        system_alert("executor-down:10.0.0.5:5921", "executor 10.0.0.5:5921 down", "no heartbeat"), emails=["a@example.com"]
    )
    assert await sender.flush(10)
    assert len(box.messages) == 1
    got = box.messages[0]
    assert got.tls and got.authenticated
    assert got.message["Subject"] == "[crontrio] executor 10.0.0.5:5921 down"
    assert sender.sent == 1


async def test_email_starttls_refuses_an_untrusted_certificate(make_sender, smtp_server, server_tls, caplog) -> None:
    port, box = smtp_server(tls_context=server_tls, require_starttls=True)
    sender = make_sender(smtp_host="127.0.0.1", smtp_port=port, smtp_security="starttls")  # system trust store only
    await sender.start()
    sender.submit(system_alert("k", "s", "t"), emails=["a@example.com"])
    assert await sender.flush(10)
    assert box.messages == [] and sender.failed == 1
    assert any("CERTIFICATE_VERIFY_FAILED" in e or "certificate verify failed" in e for e in errors(caplog)), errors(caplog)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # aiosmtpd counts only STARTTLS as TLS
async def test_email_ssl_trusts_ssl_cert_file(make_sender, smtp_server, server_tls, certificate, monkeypatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    port, box = smtp_server(ssl_context=server_tls, authenticator=authenticator, auth_required=True, auth_require_tls=False)
    sender = make_sender(smtp_host="127.0.0.1", smtp_port=port, smtp_security="ssl", smtp_username=USER, smtp_password=PASSWORD)
    await sender.start()
    sender.submit(run_alert(sample_job(), sample_run(status=st.TIMEOUT), 0), emails=["a@example.com"])
    assert await sender.flush(10)
    assert len(box.messages) == 1
    assert box.messages[0].authenticated
    assert "timeout" in box.messages[0].message["Subject"]


async def test_email_wrong_password_is_an_error_after_retries(make_sender, smtp_server, server_tls, client_tls, caplog) -> None:
    port, box = smtp_server(tls_context=server_tls, require_starttls=True, authenticator=authenticator, auth_required=True)
    sender = make_sender(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_username=USER,
        smtp_password="wrong",
        retries=1,
        sender_kw={"ssl_context": client_tls},
    )
    await sender.start()
    sender.submit(system_alert("k", "s", "t"), emails=["a@example.com"])
    assert await sender.flush(10)
    assert box.messages == []
    assert sender.failed == 1 and sender.sent == 0
    [line] = errors(caplog)
    assert "email" in line and "after 2 tries" in line and "login refused" in line


# --------------------------------------------------------------------- SMS


async def test_sms_post_json_one_request_per_phone_escaped(make_sender, http_server) -> None:
    sender = make_sender(
        sms_url=f"{http_server.base}/sms",
        sms_headers="Authorization: Bearer tok-1; X-Tenant: crontrio",
        sms_body_template='{"to": "{phone}", "text": "{message}", "job": "{job}", "status": "{status}", "run": "{run_id}"}',
    )
    alert = Alert(
        key="k",
        subject='disk "full" \\ on C:',
        text="t",
        fields={"job": 'we"ird\njob\t{phone}', "status": "failed", "run_id": "1-2-3"},
    )
    await sender.start()
    sender.submit(alert, phones=["+8613800000001", "13800000002", "+8613800000001"])
    assert await sender.flush(5)
    hits = http_server.on("/sms")
    assert [h.method for h in hits] == ["POST", "POST"]
    assert sorted(h.json()["to"] for h in hits) == ["+8613800000001", "13800000002"]
    for hit in hits:
        assert hit.headers["authorization"] == "Bearer tok-1"
        assert hit.headers["x-tenant"] == "crontrio"
        assert hit.headers["content-type"] == "application/json; charset=utf-8"
        assert hit.json() == {
            "to": hit.json()["to"],
            "text": 'disk "full" \\ on C:',
            "job": 'we"ird\njob\t{phone}',  # a placeholder inside a value is not expanded again
            "status": "failed",
            "run": "1-2-3",
        }
    assert sender.sent == 2


async def test_sms_get_json_template_becomes_the_query(make_sender, http_server) -> None:
    sender = make_sender(sms_url=f"{http_server.base}/send?key=abc&x=1", sms_method="GET")
    await sender.start()
    sender.submit(system_alert("k", "executor a&b=c down", "t"), phones=["+15550001"])
    assert await sender.flush(5)
    [hit] = http_server.on("/send")
    assert hit.method == "GET" and hit.body == b""
    assert hit.query == {"key": ["abc"], "x": ["1"], "to": ["+15550001"], "text": ["[crontrio] executor a&b=c down"]}


async def test_sms_form_templates(make_sender, http_server) -> None:
    post = make_sender(sms_url=f"{http_server.base}/form", sms_body_template="to={phone}&msg={message}&job={job}")
    get = make_sender(sms_url=f"{http_server.base}/q/{{phone}}", sms_method="GET", sms_body_template="msg={message}")
    alert = run_alert(sample_job(), sample_run(), 0)
    for sender in (post, get):
        await sender.start()
        sender.submit(alert, phones=["+4912345"])
        assert await sender.flush(5)
    [form] = http_server.on("/form")
    assert form.method == "POST" and form.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(form.body.decode()) == {"to": ["+4912345"], "msg": [alert.subject], "job": ["backup-db"]}
    [query] = http_server.on("/q/%2B4912345")  # URL placeholders are URL-encoded
    assert query.method == "GET" and query.query == {"msg": [alert.subject]}


async def test_sms_gateway_error_is_a_failure(make_sender, http_server, caplog) -> None:
    http_server.script["/sms"] = [(403, '{"error": "bad key"}')]
    sender = make_sender(sms_url=f"{http_server.base}/sms")
    await sender.start()
    sender.submit(system_alert("k", "s", "t"), phones=["+1555"])
    assert await sender.flush(5)
    assert sender.failed == 1
    [line] = errors(caplog)
    assert "sms" in line and "HTTP 403" in line and "bad key" in line


# ----------------------------------------------------------------- webhooks


def _webhook_expectations(alert: Alert) -> dict[str, Any]:
    chat = f"{alert.subject}\n\n{alert.text.rstrip()}"
    return {
        "json": {"subject": alert.subject, "text": alert.text, "severity": "error", "fields": alert.fields},
        "slack": {"text": chat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")},
        "dingtalk": {"msgtype": "text", "text": {"content": chat}},
        "wecom": {"msgtype": "text", "text": {"content": chat}},
        "feishu": {"msg_type": "text", "content": {"text": chat}},
    }


@pytest.mark.parametrize("fmt", ["json", "slack", "dingtalk", "wecom", "feishu"])
async def test_webhook_formats(make_sender, http_server, fmt: str) -> None:
    run = sample_run(output=b'say "hi"\n<b>&amp;</b>\n\xe4\xbd\xa0\xe5\xa5\xbd\tback\\slash\n')
    alert = run_alert(sample_job(), run, 1)
    sender = make_sender(webhook_url=f"{http_server.base}/hook/{fmt}?access_token=t", webhook_format=fmt)
    await sender.start()
    sender.submit(alert, emails=["ignored@example.com"], phones=["+1"])
    assert await sender.flush(5)
    [hit] = http_server.on(f"/hook/{fmt}")
    assert hit.method == "POST"
    assert hit.query == {"access_token": ["t"]}
    assert hit.headers["content-type"] == "application/json; charset=utf-8"
    assert hit.json() == _webhook_expectations(alert)[fmt]
    assert 'say "hi"' in alert.text and "你好\tback\\slash" in alert.text
    assert sender.sent == 1


@pytest.mark.parametrize(
    ("fmt", "answer"),
    [
        ("dingtalk", '{"errcode": 310000, "errmsg": "keywords not in content"}'),
        ("wecom", '{"errcode": 93000, "errmsg": "invalid webhook url"}'),
        ("feishu", '{"code": 19021, "msg": "sign match fail"}'),
    ],
)
async def test_webhook_error_code_in_a_200_is_a_failure(make_sender, http_server, caplog, fmt: str, answer: str) -> None:
    http_server.script[f"/{fmt}"] = [(200, answer)]
    sender = make_sender(webhook_url=f"{http_server.base}/{fmt}", webhook_format=fmt)
    await sender.start()
    sender.submit(system_alert("k", "s", "t"))
    assert await sender.flush(5)
    assert sender.failed == 1 and sender.sent == 0
    [line] = errors(caplog)
    assert json.loads(answer).get("errmsg", json.loads(answer).get("msg")) in line


# ---------------------------------------------------------------- throttling


async def test_throttling(make_sender, http_server, smtp_server) -> None:
    window = 0.5
    port, box = smtp_server()
    sender = make_sender(
        throttle_seconds=window,
        webhook_url=f"{http_server.base}/hook",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
    )
    await sender.start()
    alert = run_alert(sample_job(), sample_run(), 0)
    first = time.monotonic()
    for _ in range(20):
        sender.submit(alert, emails=["a@example.com"])
    sender.submit(run_alert(sample_job(), sample_run(status=st.TIMEOUT), 0), channels=["webhook"])  # another key
    assert await sender.flush(5)
    hooks = http_server.on("/hook")
    assert sorted(h.json()["fields"]["status"] for h in hooks) == ["failed", "timeout"]  # sent concurrently
    assert len(box.messages) == 1
    assert sender.suppressed == 2 * 19 and sender.sent == 3

    await until(lambda: time.monotonic() - first >= window, "the throttle window to pass")
    sender.submit(alert, emails=["a@example.com"])
    assert await sender.flush(5)
    hooks = http_server.on("/hook")
    assert len(hooks) == 3 and len(box.messages) == 2
    assert hooks[2].json()["subject"].endswith("(19 similar alerts suppressed)")
    assert hooks[2].json()["fields"]["suppressed"] == "19"
    assert box.messages[1].message["Subject"].endswith("(19 similar alerts suppressed)")
    body = box.messages[1].message.get_body(("plain",))
    assert body is not None and "(19 similar alerts suppressed)" in body.get_content()

    # And the window starts again: the next copy right away is suppressed.
    sender.submit(alert, emails=["a@example.com"])
    assert await sender.flush(5)
    assert len(http_server.on("/hook")) == 3 and sender.suppressed == 2 * 20


# ------------------------------------------------------------------- retries


async def test_retry_then_success(make_sender, http_server, caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    http_server.script["/flaky"] = [(500, "boom"), (503, "busy")]
    sender = make_sender(webhook_url=f"{http_server.base}/flaky", retries=3)
    await sender.start()
    sender.submit(system_alert("k", "s", "t"))
    assert await sender.flush(5)
    assert len(http_server.on("/flaky")) == 3
    assert (sender.sent, sender.failed) == (1, 0)
    assert errors(caplog) == []
    assert any("after 3 tries" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records if r.name == LOGGER)


async def test_retries_exhausted_is_logged_as_error(make_sender, http_server, caplog) -> None:
    http_server.script["/down"] = [(500, "still broken")] * 10
    sender = make_sender(webhook_url=f"{http_server.base}/down", retries=2)
    await sender.start()
    sender.submit(system_alert("executor-down:x", "s", "t"))
    assert await sender.flush(5)
    assert len(http_server.on("/down")) == 3  # the try and 2 retries
    assert (sender.sent, sender.failed) == (0, 1)
    [line] = errors(caplog)
    assert "executor-down:x" in line and "webhook" in line and "after 3 tries" in line and "HTTP 500" in line


# ------------------------------------------------- off the caller's path


@pytest.fixture
def silent_smtp() -> Iterator[int]:
    """A TCP port whose connections are accepted (by the kernel) and never answered."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


async def test_submit_does_not_wait_for_a_hung_smtp_server(make_sender, http_server, silent_smtp, caplog) -> None:
    sender = make_sender(
        smtp_host="127.0.0.1",
        smtp_port=silent_smtp,
        smtp_security="none",
        webhook_url=f"{http_server.base}/hook",
        sender_kw={"timeout": 30.0},
    )
    await sender.start()
    started = time.monotonic()
    for i in range(5):
        sender.submit(system_alert(f"k{i}", "s", "t"), emails=["a@example.com"])
    assert time.monotonic() - started < 0.05

    # The webhook goes out while every SMTP worker hangs on its banner.
    await until(lambda: len(http_server.on("/hook")) == 5, "the webhooks")
    assert sender.stats()["in_flight"] >= 1

    started = time.monotonic()
    await sender.close(timeout=0.5)
    took = time.monotonic() - started
    assert 0.45 <= took < 3, took
    assert sender.sent == 5 and sender.dropped == 5
    # close() aborted the hung connections: the SMTP threads end now, not after the 30 s timeout.
    await until(lambda: not [t for t in threading.enumerate() if t.name.startswith("alert-smtp")], "the SMTP threads to end", 5)
    sender.submit(system_alert("k", "s", "t"))  # after close: dropped, no exception
    assert sender.dropped == 6


async def test_full_queue_drops_with_a_warning(make_sender, http_server, caplog) -> None:
    sender = make_sender(webhook_url=f"{http_server.base}/hook", sender_kw={"queue_size": 2})
    for i in range(5):  # not started: nothing leaves the queue
        sender.submit(system_alert(f"k{i}", "s", "t"))
    assert sender.dropped == 3
    assert any(r.levelno == logging.WARNING and "queue is full" in r.getMessage() for r in caplog.records if r.name == LOGGER)
    await sender.start()  # what was queued before start goes out
    assert await sender.flush(5)
    assert len(http_server.on("/hook")) == 2


async def test_submit_from_another_thread(make_sender, http_server) -> None:
    sender = make_sender(webhook_url=f"{http_server.base}/hook")
    await sender.start()
    thread = threading.Thread(target=lambda: sender.submit(system_alert("k", "from a thread", "t")))
    thread.start()
    thread.join()
    await until(lambda: sender.sent == 1, "the alert from the other thread")
    [hit] = http_server.on("/hook")
    assert hit.json()["subject"] == "[crontrio] from a thread"
