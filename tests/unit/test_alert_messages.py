"""Alert texts, templates and payloads, and the sender's throttle on a fake clock (no network)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest

from crontrio.common import status as st
from crontrio.common.alerts import Alert, AlertSender, PermanentChannelError, run_alert, system_alert
from crontrio.common.alerts.message import output_tail
from crontrio.common.alerts.sms import SmsChannel, parse_headers
from crontrio.common.alerts.webhook import payload
from crontrio.common.config import AlertConfig
from crontrio.common.model import Job, RunRecord

JOB = Job(name="nightly", spec="@daily", command="true", id=3, retries=2)


def run(**kw: object) -> RunRecord:
    base: dict[str, object] = {
        "run_id": "3-1000-0",
        "job_id": 3,
        "job_name": "nightly",
        "scheduled_ms": 1000,
        "attempt": 0,
        "status": st.FAILED,
        "exit_code": 1,
    }
    return RunRecord(**{**base, **kw})  # type: ignore[arg-type]


def test_output_tail_keeps_last_lines_and_bytes() -> None:
    out = b"".join(f"l{i}\r\n".encode() for i in range(100))
    assert output_tail(out).split("\n") == [f"l{i}" for i in range(80, 100)]
    big = ("x" * 500 + "\n").encode() * 10
    tail = output_tail(big)
    assert len(tail.encode()) <= 2048 and tail.startswith("…")
    assert output_tail(b"a\x1b[31mred\x00\x07\n\n") == "a[31mred"
    assert output_tail("é".encode() * 3000).encode().__len__() <= 2048  # no split UTF-8 sequence
    assert output_tail(b"") == ""


def test_run_alert() -> None:
    alert = run_alert(JOB, run(output=b"one\ntwo\n", error="boom\nsecond line", started_ms=2000, finished_ms=3500), 1)
    assert alert.key == "run:nightly:failed"
    assert alert.severity == "error"
    assert alert.subject == "[crontrio] job nightly failed (run 3-1000-0, exit code 1)"
    assert alert.fields["duration"] == "1.500s"
    assert alert.fields["retries"] == "1 of 2"
    assert alert.fields["output_tail"] == "one\ntwo"
    assert alert.fields["started"] == "1970-01-01T00:00:02.000Z"
    assert "Error:\nboom\nsecond line" in alert.text
    ok = run_alert(JOB, run(status=st.SUCCEEDED, exit_code=0), 0)
    assert ok.severity == "info" and ok.fields["finished"] == "-" and ok.fields["duration"] == "-"
    assert "Output: (none)" in ok.text and "error" not in ok.fields


def test_suppressed_note() -> None:
    alert = system_alert("k", "s", "t")
    assert alert.with_suppressed(0) is alert
    assert alert.with_suppressed(1).subject == "[crontrio] s (1 similar alert suppressed)"
    many = alert.with_suppressed(12)
    assert many.subject.endswith("(12 similar alerts suppressed)") and many.text.endswith("(12 similar alerts suppressed)\n")
    assert many.fields == {"suppressed": "12"}


def test_system_alert() -> None:
    alert = system_alert("executor-down:a:1", "executor a:1\ndown", "no heartbeat", severity="error")
    assert alert.subject == "[crontrio] executor a:1 down"
    assert alert.text == "no heartbeat\n"
    with pytest.raises(ValueError):
        system_alert("k", "s", "t", severity="fatal")


def test_sms_requests() -> None:
    alert = Alert(key="k", subject='a "quoted" \\ subject', text="", fields={"job": "j\n1", "status": "failed", "run_id": "r"})
    cfg = AlertConfig(
        sms_url="http://gw/send",
        sms_headers="X-Key: abc; X-Other: 1",
        sms_body_template='{"p": "{phone}", "m": "{message}", "j": "{job}"}',
    )
    request = SmsChannel(cfg).build_request(alert, "+123")
    assert request.method == "POST" and request.headers["x-key"] == "abc"
    assert json.loads(request.content) == {"p": "+123", "m": 'a "quoted" \\ subject', "j": "j\n1"}

    form = SmsChannel(AlertConfig(sms_url="http://gw/send", sms_body_template="to={phone}&m={message}"))
    request = form.build_request(alert, "+123")
    assert parse_qs(request.content.decode()) == {"to": ["+123"], "m": ['a "quoted" \\ subject']}

    array = SmsChannel(AlertConfig(sms_url="http://gw/", sms_method="GET", sms_body_template='["{phone}"]'))
    with pytest.raises(PermanentChannelError):
        array.build_request(alert, "+1")
    broken = SmsChannel(AlertConfig(sms_url="http://gw/", sms_body_template='{"to": {phone}}'))
    with pytest.raises(PermanentChannelError):
        broken.build_request(alert, "+1 2")


def test_parse_headers() -> None:
    assert parse_headers("") == {}
    assert parse_headers("Authorization: Bearer a:b; X-Y:z;") == {"Authorization": "Bearer a:b", "X-Y": "z"}
    with pytest.raises(ValueError):
        parse_headers("no colon")


def test_wecom_content_is_capped() -> None:
    alert = system_alert("k", "s", "好" * 5000)
    content = payload(alert, "wecom")["text"]["content"]
    assert len(content.encode()) <= 2048 and content.endswith("…")
    assert payload(alert, "json")["text"] == alert.text


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_throttle_on_a_fake_clock() -> None:
    clock = FakeClock()
    sender = AlertSender(AlertConfig(webhook_url="http://127.0.0.1:9/", throttle_seconds=60), {}, clock=clock)
    alert = system_alert("k", "s", "t")
    for _ in range(5):
        sender.submit(alert)
    sender.submit(system_alert("other", "s", "t"))
    assert sender.stats()["queued"] == 2 and sender.suppressed == 4
    clock.now += 59.9
    sender.submit(alert)
    assert sender.suppressed == 5
    clock.now += 0.1
    sender.submit(alert)
    assert sender.stats()["queued"] == 3
    await sender.close(timeout=0)  # never started: what is queued is dropped
    assert sender.dropped == 3


def test_resolve_emails() -> None:
    sender = AlertSender(AlertConfig(), {"ops": "a@x.org; b@x.org", "Dev": "d@x.org"})
    assert sender.channels_available() == []
    assert sender.resolve_emails(["ops", "dev", "A@x.org", " ", "c@x.org", "nobody"]) == [
        "a@x.org",
        "b@x.org",
        "d@x.org",
        "c@x.org",
    ]
