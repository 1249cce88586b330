"""deploy/systemd: each unit passes `systemd-analyze verify` (the real tool),
the check catches a broken unit, and the units keep the promises their
comments make (own user and hardening for dispatcher and monitor; an
executor that can still switch to job users)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from testing_support.servers import _binary
from testing_support.services import REPO

UNITS = REPO / "deploy" / "systemd"
SERVICES = ("dispatcher", "executor", "monitor")
EXEC_RE = re.compile(r"^ExecStart=/usr/local/bin/(crontrio-[a-z]+) ", re.MULTILINE)


def directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every setting, in order (keys may repeat)."""
    out = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def settings(service: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for _, key, value in directives((UNITS / f"crontrio-{service}.service").read_text()):
        found.setdefault(key, []).append(value)
    return found


def verify(unit_text: str, name: str, tmp_path: Path, make_stub: bool = True) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on the unit, its ExecStart pointed at a stub
    executable: the real commands are not installed on a test machine, and
    verify refuses a unit whose command does not exist."""
    tool = _binary("systemd-analyze", "systemd")
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    for command in EXEC_RE.findall(unit_text):
        if make_stub:
            stub = stubs / command
            stub.write_text("#!/bin/sh\nexit 0\n")
            stub.chmod(0o755)
    path = tmp_path / name
    path.write_text(unit_text.replace("/usr/local/bin/", f"{stubs}/"))
    return subprocess.run([tool, "verify", "--man=no", str(path)], capture_output=True, text=True, timeout=60)


def problems(result: subprocess.CompletedProcess[str], name: str) -> list[str]:
    """What verify said about our unit: unknown keys and bad values are only
    warnings (exit 0), so every line naming the unit counts, as does the exit code."""
    lines = [line for line in (result.stdout + result.stderr).splitlines() if name in line]
    if result.returncode != 0:
        lines.append(f"exit {result.returncode}: {result.stderr.strip()}")
    return lines


@pytest.mark.parametrize("service", SERVICES)
def test_unit_passes_systemd_analyze_verify(service: str, tmp_path: Path) -> None:
    name = f"crontrio-{service}.service"
    text = (UNITS / name).read_text()
    assert EXEC_RE.findall(text) == [f"crontrio-{service}"]
    result = verify(text, name, tmp_path)
    assert problems(result, name) == [], result


@pytest.mark.parametrize(
    ("breakage", "make_stub"),
    [
        (lambda t: t.replace("Restart=on-failure", "Restart=on-failur"), True),  # a bad value
        (lambda t: t.replace("[Service]\n", "[Service]\nProtectSytem=strict\n"), True),  # a misspelt key
        (lambda t: t.replace("Type=exec", "Type=exec\nKillMode=softly"), True),
        (lambda t: t, False),  # ExecStart names a command that does not exist
    ],
)
def test_the_check_fails_on_a_broken_unit(breakage: Callable[[str], str], make_stub: bool, tmp_path: Path) -> None:
    name = "crontrio-dispatcher.service"
    broken = breakage((UNITS / name).read_text())
    assert problems(verify(broken, name, tmp_path, make_stub=make_stub), name) != []


@pytest.mark.parametrize("service", SERVICES)
def test_every_unit_restarts_on_failure_reads_its_conf_and_secrets(service: str) -> None:
    s = settings(service)
    assert s["Restart"] == ["on-failure"]
    assert s["ExecStart"] == [f"/usr/local/bin/crontrio-{service} -c /etc/crontrio/conf.ini"]
    assert f"-/etc/crontrio/{service}.env" in s["EnvironmentFile"]
    # SIGTERM to the service alone, so it drains before anything else is killed.
    assert s["KillMode"] == ["mixed"]


@pytest.mark.parametrize("service", ["dispatcher", "monitor"])
def test_dispatcher_and_monitor_run_as_their_own_user_hardened(service: str) -> None:
    s = settings(service)
    assert (s["User"], s["Group"]) == (["crontrio"], ["crontrio"])
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "StateDirectory": "crontrio",
    }.items():
        assert s.get(key) == [value], key
    # The embedded SQLite store is shared: both must hold the same user and directory.
    assert settings("dispatcher")["WorkingDirectory"] == s["WorkingDirectory"] == ["/var/lib/crontrio"]


def test_executor_keeps_what_switching_to_job_users_needs() -> None:
    s = settings("executor")
    assert s["User"] == ["root"]
    # Each of these would stop the setgid/setgroups/setuid to a job's user or
    # map the users away, or strip setuid programs that jobs run.
    for key in ("CapabilityBoundingSet", "AmbientCapabilities", "DynamicUser", "PrivateUsers", "SystemCallFilter"):
        assert key not in s, key
    assert s["NoNewPrivileges"] == ["no"]
    assert "RestrictSUIDSGID" not in s
    # Jobs without a workdir start in a directory every job user can enter.
    assert s["WorkingDirectory"] == ["/"]
    assert s["TasksMax"] == ["infinity"]
    assert "crontrio.env" not in " ".join(s["EnvironmentFile"])  # no database credentials on executor hosts
