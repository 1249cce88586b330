"""cronctl as a user runs it: a real process against a real dispatcher."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from testing_support.services import REPO, free_port
from testing_support.trio import Trio


def cronctl(*args: str, server: str | None = None) -> subprocess.CompletedProcess[str]:
    # A server nobody listens on: commands that must not need one prove it.
    target = server or f"127.0.0.1:{free_port()}"
    return subprocess.run(
        [sys.executable, "-m", "crontrio.cronctl.main", "--server", target, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


ADD = ["job", "add", "--name", "j1", "--command", "true"]


@pytest.mark.parametrize(
    ("args", "field", "fragment"),
    [
        ([*ADD, "--spec", "61 * * * *"], "spec:", "61"),
        ([*ADD, "--spec", "* * *"], "spec:", "fields"),
        ([*ADD, "--spec", "0 0 31 2 *"], "spec:", "never"),
        ([*ADD, "--spec", "@fortnightly"], "spec:", "@fortnightly"),
        ([*ADD, "--spec", "* * * * *", "--tz", "Mars/Olympus"], "timezone:", "Mars/Olympus"),
        ([*ADD, "--spec", "* * * * *", "--timeout", "-1"], "timeout:", "-1"),
        ([*ADD, "--spec", "* * * * *", "--timeout", "soon"], "timeout:", "soon"),
        ([*ADD, "--spec", "* * * * *", "--retries", "1.5"], "retries:", "1.5"),
        (["job", "add", "--name", "bad name", "--spec", "* * * * *", "--command", "true"], "name:", "bad name"),
        (["job", "add", "--name", "h", "--spec", "* * * * *", "--type", "http", "--command", "ftp://x"], "command:", "ftp://x"),
        (["job", "add", "--name", "e", "--spec", "* * * * *", "--command", "  "], "command:", "empty"),
    ],
)
def test_bad_field_exits_2_naming_the_field(args: list[str], field: str, fragment: str) -> None:
    result = cronctl(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith(f"error: {field}"), result.stderr
    assert fragment in result.stderr


def test_cron_next_prints_iso_utc_offline() -> None:
    result = cronctl("cron", "next", "30 2 * * *", "--tz", "America/New_York", "--after", "2026-03-07T12:00:00Z", "--count", "3")
    assert result.returncode == 0, result.stderr
    # 2026-03-08 is the spring-forward night: 02:30 does not exist and fires at 03:00 EDT (07:00Z).
    assert result.stdout.splitlines() == ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"]


def test_cron_next_json_and_seconds() -> None:
    result = cronctl("cron", "next", "*/20 * * * * *", "--after", "2026-01-01T00:00:00Z", "--count", "3", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00Z"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["cron", "next", "0 0 31 2 *"], "spec:"),
        (["cron", "next", "* * * * *", "--tz", "Nowhere/Land"], "timezone:"),
        (["cron", "next", "* * * * *", "--after", "yesterday"], "after:"),
    ],
)
def test_cron_next_errors_exit_2(args: list[str], fragment: str) -> None:
    result = cronctl(*args)
    assert result.returncode == 2
    assert fragment in result.stderr


def test_no_dispatcher_exits_3_and_says_so() -> None:
    result = cronctl("job", "list")
    assert result.returncode == 3
    assert "no dispatcher reachable" in result.stderr


def test_help_documents_commands_and_exit_codes() -> None:
    top = cronctl("--help")
    assert top.returncode == 0
    for word in ("job", "run", "cron", "Exit codes", "CRONTRIO_SERVER"):
        assert word in top.stdout
    add = cronctl("job", "add", "--help")
    for option in ("--spec", "--tz", "--timeout", "--retries", "--retry-interval", "--type", "--method", "--json"):
        assert option in add.stdout


def test_against_a_dispatcher(trio: Trio) -> None:
    trio.start("dispatcher")
    ok = cronctl(
        "job",
        "add",
        "--name",
        "nightly",
        "--spec",
        "30 2 * * *",
        "--tz",
        "Europe/Berlin",
        "--command",
        "echo hi",
        "--timeout",
        "60",
        "--retries",
        "2",
        "--json",
        server=trio.dispatcher,
    )
    assert ok.returncode == 0, ok.stderr
    job = json.loads(ok.stdout)
    assert job["name"] == "nightly" and job["timezone"] == "Europe/Berlin" and job["retries"] == 2
    assert job["next_fire"].endswith(":30:00Z")

    again = cronctl("job", "add", "--name", "nightly", "--spec", "* * * * *", "--command", "true", server=trio.dispatcher)
    assert again.returncode == 2
    assert "name: a job named 'nightly' already exists" in again.stderr

    listed = cronctl("job", "list", server=trio.dispatcher)
    assert listed.returncode == 0 and "nightly" in listed.stdout and "Europe/Berlin" in listed.stdout

    for args in (["job", "show", "nope"], ["run", "list", "--job", "nope"], ["run", "show", "1-2-3"], ["job", "delete", "nope"]):
        missing = cronctl(*args, server=trio.dispatcher)
        assert missing.returncode == 1, (args, missing.stderr)
        assert "no job 'nope'" in missing.stderr or "no run '1-2-3'" in missing.stderr

    deleted = cronctl("job", "delete", "nightly", server=trio.dispatcher)
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(cronctl("job", "list", "--json", server=trio.dispatcher).stdout) == []


def test_server_failover_uses_any_live_dispatcher(trio: Trio) -> None:
    trio.start("dispatcher")
    dead = f"127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "crontrio.cronctl.main", "--server", dead, "--server", trio.dispatcher, "job", "list", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
