"""Clients reach the services through common/grpc_channel.py, not the server module."""

from __future__ import annotations

import subprocess
import sys


def test_cronctl_and_the_console_do_not_load_the_grpc_server_module() -> None:
    probe = (
        "import sys; import crontrio.cronctl.client, crontrio.console.gateway; "
        "print('crontrio.common.grpc_server' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert loaded.stdout.strip() == "False", loaded.stderr
