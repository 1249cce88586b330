"""Every bench command answers --help: cheap subprocesses, so outside the
"cluster" group that test_bench_quick.py's scenarios load both cores in."""

from __future__ import annotations

import subprocess
import sys

import pytest

from testing_support.services import REPO


@pytest.mark.parametrize(
    "command", ["fire_lag", "burst", "schedule_scale", "concurrency", "failover", "console_pages", "quick", "all"]
)
def test_every_bench_command_has_help(command: str) -> None:
    argv = [sys.executable, "-m", "bench.run", command, "--help"]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--out" in proc.stdout, proc.stderr
