"""An embedded dispatcher does not import what only other set-ups use: the
etcd client (distributed mode), the HTTP client of SMS and webhook alerts
(http jobs import it when validated), the alert channels not configured."""

from __future__ import annotations

import subprocess
import sys

# The dispatcher's modules, then what its start-up does with an embedded
# conf (no [etcd], no alert channel) and a shell job.
PROBE = """
import sys
import crontrio.dispatcher.app
from crontrio.common.alerts.sender import AlertSender
from crontrio.common.config import AlertConfig, EtcdConfig
from crontrio.common.jobs import validate_job
from crontrio.common.model import Job
from crontrio.common.registry.factory import make_registry
make_registry(EtcdConfig(), ["127.0.0.1:1"])
AlertSender(AlertConfig(), {})
validate_job(Job(name="shell", spec="* * * * *", command="true"))
print(" ".join(sorted(m for m in ("aetcd", "httpx", "smtplib", "crontrio.common.alerts.sms",
    "crontrio.common.alerts.webhook", "crontrio.common.alerts.email") if m in sys.modules)))
"""


def _loaded(probe: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.split()


def test_an_embedded_dispatcher_imports_neither_etcd_nor_the_http_client_nor_unused_alert_channels() -> None:
    assert _loaded(PROBE) == []


def test_what_is_configured_is_still_imported_when_used() -> None:
    probe = """
import sys
from crontrio.common.alerts.sender import AlertSender
from crontrio.common.config import AlertConfig
from crontrio.common.jobs import validate_job
from crontrio.common.model import Job
sender = AlertSender(AlertConfig(sms_url="http://127.0.0.1:9/sms", webhook_url="http://127.0.0.1:9/hook"), {})
print(sorted(sender.channels_available()) == ["sms", "webhook"])
validate_job(Job(name="web", spec="* * * * *", command="https://example.com/x", type="http"))
print("httpx" in sys.modules)
"""
    assert _loaded(probe) == ["True", "True"]
