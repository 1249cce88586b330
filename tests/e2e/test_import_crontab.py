"""cronctl import crontab against a real dispatcher and executor: a dry run
stores nothing, a second import changes nothing, a file with an error stores
nothing, and a job's % input really reaches its stdin on the executor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from testing_support.services import REPO, wait_for
from testing_support.trio import Trio

CRONTAB = textwrap.dedent(
    r"""
    # the crontab of host web1
    PATH=/usr/local/bin:/usr/bin:/bin
    GREETING = "hello  there"
    MAILTO=ops@example.com
    CRON_TZ=Europe/Berlin
    30 2 * * 1-5 /usr/local/bin/backup --full # a hash in the command stays
    0 9 * JAN,jul sun,7 echo "$GREETING"
    MAILTO=""
    @reboot /usr/local/bin/start-agent
    @hourly cat; echo "[$GREETING]"%Dear \%USER,%  'quoted' $HOME `id`%%bye
    """
)


def cronctl(trio: Trio, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crontrio.cronctl.main", "--server", trio.dispatcher, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )


def imported(trio: Trio, *args: str, stdin: str | None = None, code: int = 0) -> dict[str, Any]:
    result = cronctl(trio, "import", "crontab", "--json", "--tz", "UTC", *args, stdin=stdin)
    assert result.returncode == code, (result.stdout, result.stderr)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def stored(trio: Trio) -> list[tuple[object, ...]]:
    return trio.sql("SELECT name, spec, timezone, command, env, enabled, notify_emails, updated_ms FROM jobs ORDER BY name")


def audit_count(trio: Trio) -> int:
    """Changes audited (reading secret values to compare is audited too, as job.reveal)."""
    return int(trio.sql("SELECT COUNT(*) FROM audit_log WHERE action <> 'job.reveal'")[0][0])  # type: ignore[call-overload]


def finished_run(trio: Trio, job: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        rows = trio.sql("SELECT run_id, status, output, error FROM runs WHERE job_name = ?", (job,))
        for run_id, status, output, error in rows:
            if status not in ("pending", "running", "queued"):
                return {"run_id": run_id, "status": status, "output": bytes(output).decode(), "error": error}  # type: ignore[arg-type]
        return None

    return wait_for(done, 30, f"a finished run of {job}")


def test_import_dry_run_twice_errors_and_stdin(trio: Trio, tmp_path: Path) -> None:
    for service in ("executor", "dispatcher"):
        trio.start(service)
    crontab = tmp_path / "web1.crontab"
    crontab.write_text(CRONTAB)

    # A dry run shows every job and stores nothing.
    plan = imported(trio, "--dry-run", str(crontab))
    assert (plan["dry_run"], plan["stored"]) == (True, False)
    assert [j["action"] for j in plan["jobs"]] == ["create"] * 4
    assert stored(trio) == [] and audit_count(trio) == 0
    assert any("@reboot" in w for w in plan["warnings"])
    assert any(w.startswith("no --user") for w in plan["warnings"])  # a user crontab would now run as root

    first = imported(trio, str(crontab))
    assert first["stored"] and [j["action"] for j in first["jobs"]] == ["create"] * 4
    jobs = {j["line"]: j for j in first["jobs"]}
    assert sorted(jobs) == [7, 8, 10, 11]
    assert all(j["name"].startswith("web1-") for j in jobs.values())
    assert (jobs[7]["timezone"], jobs[7]["notify_emails"]) == ("Europe/Berlin", ["ops@example.com"])
    assert jobs[7]["command"] == "/usr/local/bin/backup --full # a hash in the command stays"
    assert jobs[8]["env"] == {"PATH": "/usr/local/bin:/usr/bin:/bin", "GREETING": "hello  there"}
    assert (jobs[10]["paused"], jobs[10]["notify_emails"]) == (True, [])
    rows = stored(trio)
    assert len(rows) == 4
    shown = cronctl(trio, "job", "show", jobs[10]["name"], "--json")
    assert json.loads(shown.stdout)["enabled"] is False

    # The same file again: every job unchanged, nothing written, nothing audited.
    audits = audit_count(trio)
    again = imported(trio, str(crontab))
    assert [j["action"] for j in again["jobs"]] == ["unchanged"] * 4
    assert [j["name"] for j in again["jobs"]] == [j["name"] for j in first["jobs"]]
    assert stored(trio) == rows and audit_count(trio) == audits
    table = cronctl(trio, "import", "crontab", "--tz", "UTC", str(crontab))
    assert table.returncode == 0 and "4 unchanged" in table.stdout, table

    # A paused or tuned job is still the same job: importing again neither undoes that nor calls it changed.
    assert cronctl(trio, "job", "pause", jobs[7]["name"]).returncode == 0
    assert cronctl(trio, "job", "edit", jobs[11]["name"], "--retries", "2").returncode == 0
    assert [j["action"] for j in imported(trio, str(crontab))["jobs"]] == ["unchanged"] * 4

    # A file with an error: the errors named by line, nothing stored at all.
    before = stored(trio)
    broken = tmp_path / "web2"
    broken.write_text("0 1 * * * echo fine\nCRON_TZ=Mars/Olympus\n61 * * * * echo bad\n")
    refused = imported(trio, str(broken), code=2)
    assert [e.split(": line ")[1][:2] for e in refused["errors"]] == ["2:", "3:"], refused["errors"]
    assert refused["errors"][0].startswith(f"{broken}: line 2: CRON_TZ:") and "Mars/Olympus" in refused["errors"][0]
    assert refused["errors"][1].startswith(f"{broken}: line 3: spec:")
    assert stored(trio) == before
    # ... unless asked to skip the bad lines.
    skipped = imported(trio, "--skip-invalid", str(broken))
    assert [j["action"] for j in skipped["jobs"]] == ["create"] and len(stored(trio)) == 5

    # A changed setting makes the same names differ: refused without --update.
    changed = tmp_path / "changed"
    changed.write_text(CRONTAB.replace('MAILTO=""', "MAILTO=dev@example.com"))
    before = stored(trio)
    conflict = imported(trio, "--prefix", "web1", str(changed), code=1)
    assert [j["action"] for j in conflict["jobs"]] == ["unchanged", "unchanged", "conflict", "conflict"]
    assert stored(trio) == before
    updated = imported(trio, "--prefix", "web1", "--update", str(changed))
    assert [j["action"] for j in updated["jobs"]] == ["unchanged", "unchanged", "update", "update"]
    reboot = json.loads(cronctl(trio, "job", "show", jobs[10]["name"], "--json").stdout)
    assert reboot["enabled"] is False  # the update keeps it paused
    tuned = json.loads(cronctl(trio, "job", "show", jobs[11]["name"], "--json").stdout)
    assert tuned["retries"] == 2  # ... and the other keeps its retries, with the new MAILTO
    (emails,) = trio.sql("SELECT notify_emails FROM jobs WHERE name = ?", (jobs[11]["name"],))[0]
    assert json.loads(str(emails)) == ["dev@example.com"]
    assert [j["action"] for j in imported(trio, "--prefix", "web1", str(changed))["jobs"]] == ["unchanged"] * 4

    # An edited line makes a new job; the old one is stale (it would still fire) until pruned.
    edited = tmp_path / "edited"
    edited.write_text(CRONTAB.replace("30 2 * * 1-5", "45 3 * * 1-5").replace('MAILTO=""', "MAILTO=dev@example.com"))
    moved = imported(trio, "--prefix", "web1", str(edited))
    actions = {j["name"]: j["action"] for j in moved["jobs"]}
    assert actions[jobs[7]["name"]] == "stale" and sorted(actions.values()).count("create") == 1
    assert any("--prune deletes them" in w and jobs[7]["name"] in w for w in moved["warnings"])
    names = [row[0] for row in stored(trio)]
    assert jobs[7]["name"] in names and len(names) == 6
    plan = imported(trio, "--prefix", "web1", "--prune", "--dry-run", str(edited))
    assert {j["name"]: j["action"] for j in plan["jobs"]}[jobs[7]["name"]] == "delete"
    assert [row[0] for row in stored(trio)] == names
    pruned = imported(trio, "--prefix", "web1", "--prune", str(edited))
    assert sorted(j["action"] for j in pruned["jobs"]) == ["delete", "unchanged", "unchanged", "unchanged", "unchanged"]
    assert jobs[7]["name"] not in [row[0] for row in stored(trio)]
    assert "web2-" in " ".join(row[0] for row in stored(trio))  # another file's jobs are not its to prune
    again = imported(trio, "--prefix", "web1", "--prune", str(edited))
    assert [j["action"] for j in again["jobs"]] == ["unchanged"] * 4

    # The % input arrives on the command's stdin, run by the real executor.
    ran = cronctl(trio, "job", "run", jobs[11]["name"])
    assert ran.returncode == 0, ran.stderr
    run = finished_run(trio, jobs[11]["name"])
    assert run["status"] == "succeeded", run
    assert run["output"] == "Dear %USER,\n  'quoted' $HOME `id`\n\nbye\n[hello  there]\n"


def test_import_system_crontab_from_stdin_runs_as_its_user(trio: Trio) -> None:
    for service in ("executor", "dispatcher"):
        trio.start(service)
    # HOME=/tmp: the job starts there (the executor's own directory is not nobody's).
    text = "HOME=/tmp\n* * * * * nobody id -un; pwd\n"
    result = imported(trio, "--system", "--target", trio.executor, "-", stdin=text)
    (job,) = result["jobs"]
    assert not any(w.startswith("no --user") for w in result["warnings"])  # the user column says who
    assert (job["user"], job["target"], job["name"].startswith("crontab-")) == ("nobody", trio.executor, True)
    assert cronctl(trio, "job", "run", job["name"]).returncode == 0
    run = finished_run(trio, job["name"])
    if os.getuid() == 0:
        assert (run["status"], run["output"]) == ("succeeded", "nobody\n/tmp\n"), run
    else:
        assert run["status"] == "failed" and "not running as root" in run["error"]
