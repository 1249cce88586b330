"""The metrics settings: defaults, empty = off, checked addresses, the
per-job switch, in both shipped conf files."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from crontrio.common.config import load_config
from crontrio.common.errors import ConfigError
from crontrio.common.metrics_http import MetricsServer

CONF = Path(__file__).resolve().parents[2] / "conf"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf.ini"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["conf.ini", "conf.distributed.ini"])
def test_shipped_confs_serve_metrics_on_the_documented_ports(name: str) -> None:
    cfg = load_config(CONF / name, env={})
    assert cfg.dispatcher.metrics_listen == "127.0.0.1:5924"
    assert cfg.executor.metrics_listen == "127.0.0.1:5925"
    assert cfg.monitor.per_job_metrics is True
    assert cfg.monitor.metrics_refresh_seconds == 15


def test_empty_turns_metrics_off_and_per_job_series_can_be_turned_off(tmp_path: Path) -> None:
    text = "[dispatcher]\nmetrics_listen =\n[executor]\nmetrics_listen =\n[monitor]\nper_job_metrics = false\n"
    cfg = load_config(write(tmp_path, text), env={})
    assert cfg.dispatcher.metrics_listen == ""
    assert cfg.executor.metrics_listen == ""
    assert cfg.monitor.per_job_metrics is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[dispatcher]\nmetrics_listen = 5924\n", "dispatcher.metrics_listen: expected host:port"),
        ("[executor]\nmetrics_listen = host:99999\n", "executor.metrics_listen: expected host:port"),
        ("[monitor]\nmetrics_refresh_seconds = 0\n", "monitor.metrics_refresh_seconds: must be positive"),
        ("[monitor]\nper_job_metrics = maybe\n", "monitor.per_job_metrics"),
    ],
)
def test_bad_metrics_settings_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), env={})


async def test_a_taken_metrics_port_is_an_error_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        server = MetricsServer(address, CollectorRegistry(), setting="executor.metrics_listen")
        with pytest.raises(OSError, match=f"executor.metrics_listen: cannot listen on {address}"):
            await server.start()
