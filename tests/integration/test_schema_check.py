"""A service on a schema older than its code refuses to start, saying how to fix it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from testing_support.services import REPO, free_port, write_conf


def test_dispatcher_refuses_a_schema_that_is_behind(tmp_path: Path) -> None:
    conf = write_conf(
        tmp_path,
        {
            "database": {"path": str(tmp_path / "db.sqlite"), "auto_migrate": "false"},
            "dispatcher": {"listen": f"127.0.0.1:{free_port()}"},
        },
    )
    result = subprocess.run(
        [sys.executable, "-m", "crontrio.dispatcher", "-c", str(conf)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "python -m crontrio.monitor migrate" in result.stderr, result.stderr
    migrate = subprocess.run(
        [sys.executable, "-m", "crontrio.monitor", "-c", str(conf), "migrate"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrate.returncode == 0, migrate.stderr
    assert "upgraded from empty to" in migrate.stderr


def test_bad_config_stops_a_service_naming_the_key(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, {"executor": {"listen": "127.0.0.1:5921", "kill_grace": "5"}})
    result = subprocess.run(
        [sys.executable, "-m", "crontrio.executor", "-c", str(conf)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "executor.kill_grace: unknown key" in result.stderr
