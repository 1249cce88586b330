"""cronctl tells the truth, against a real trio: job metadata (description,
owner, tags), job export/import, skipped manual runs, env merge vs replace,
guarded deletes, target warnings, executor detection, hung-server failover,
JSON errors and `run list --running`."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner

from crontrio.cronctl.client import AdminClient, with_default_port
from crontrio.protos import crontrio_pb2 as pb
from testing_support.services import wait_for
from testing_support.trio import Trio
from tests.e2e.test_cronctl import cronctl

pytestmark = pytest.mark.xdist_group("cronctl_truth")


def ok(t: Trio, *args: str) -> str:
    result = t.cronctl(*args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def ok_json(t: Trio, *args: str) -> Any:
    return json.loads(ok(t, *args, "--json"))


# ------------------------------------------------------------ job metadata


def test_description_owner_tags_add_list_show_edit_and_audit(busy_trio: Trio) -> None:
    t = busy_trio
    ok(
        t,
        "job",
        "add",
        "--name",
        "meta-a",
        "--spec",
        "@daily",
        "--command",
        "true",
        "--description",
        "Backs up\nthe DB",
        "--owner",
        "team-db",
        "--tag",
        "backup",
        "--tag",
        "nightly",
        "--notify",
        "on_failure",
        "--notify-email",
        "ops@example.com",
    )
    ok(t, "job", "add", "--name", "meta-b", "--spec", "@daily", "--command", "true", "--owner", "team-web", "--tag", "nightly")
    shown = ok_json(t, "job", "show", "meta-a")
    assert (shown["description"], shown["owner"], shown["tags"]) == ("Backs up\nthe DB", "team-db", ["backup", "nightly"])
    # every field, notify settings included
    assert (shown["notify_policy"], shown["notify_emails"], shown["notify_channels"]) == ("on_failure", ["ops@example.com"], [])
    table = ok(t, "job", "show", "meta-a")
    for key in ("description", "owner", "tags", "notify_policy", "notify_emails", "notify_phones", "notify_channels"):
        assert any(line.startswith(key) for line in table.splitlines()), (key, table)
    assert [j["name"] for j in ok_json(t, "job", "list", "--tag", "nightly", "--prefix", "meta-")] == ["meta-a", "meta-b"]
    assert [j["name"] for j in ok_json(t, "job", "list", "--tag", "backup")] == ["meta-a"]
    assert [j["name"] for j in ok_json(t, "job", "list", "--owner", "team-web")] == ["meta-b"]
    assert "backup,nightly" in ok(t, "job", "list", "--tag", "backup")
    client = AdminClient([t.dispatcher])
    first = client.call(lambda s: s.ListJobs, pb.ListJobsRequest(tag="nightly", name_prefix="meta-", limit=1))
    assert [j.name for j in first.jobs] == ["meta-a"] and first.next_page_token
    rest = client.call(
        lambda s: s.ListJobs, pb.ListJobsRequest(tag="nightly", name_prefix="meta-", page_token=first.next_page_token)
    )
    assert [j.name for j in rest.jobs] == ["meta-b"]
    with pytest.raises(grpc.RpcError) as other_filters:  # a token is bound to its filters
        client.call(lambda s: s.ListJobs, pb.ListJobsRequest(name_prefix="meta-", page_token=first.next_page_token))
    assert other_filters.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad = t.cronctl("job", "list", "--tag", "Not a slug")
    assert bad.returncode == 2 and "tag:" in bad.stderr
    refused = t.cronctl("job", "add", "--name", "meta-c", "--spec", "@daily", "--command", "true", "--tag", "UPPER")
    assert refused.returncode == 2 and refused.stderr.startswith("error: tags:"), refused.stderr
    ok(t, "job", "edit", "meta-a", "--tag", "", "--owner", "team-ops")
    edited = ok_json(t, "job", "show", "meta-a")
    assert (edited["tags"], edited["owner"], edited["description"]) == ([], "team-ops", "Backs up\nthe DB")
    update = ok_json(t, "audit", "list", "--target", "meta-a")[0]
    assert update["action"] == "job.update"
    assert update["before"]["tags"] == ["backup", "nightly"] and update["after"]["owner"] == "team-ops"


# ------------------------------------------------------------ export / import


def test_export_import_round_trip_idempotent_conflict_update(busy_trio: Trio, tmp_path: Path) -> None:
    t = busy_trio
    ok(
        t,
        "job",
        "add",
        "--name",
        "xp-up",
        "--spec",
        "@hourly",
        "--command",
        "true",
        "--env",
        "TOKEN=s3cret",
        "--tag",
        "xp",
        "--paused",
        "--retries",
        "2",
        "--notify",
        "always",
    )
    ok(
        t,
        "job",
        "add",
        "--name",
        "xp-down",
        "--spec",
        "",
        "--after",
        "xp-up:always",
        "--command",
        "echo down",
        "--description",
        "after up",
    )
    exported = t.cronctl("job", "export", "xp-down", "xp-up")
    assert exported.returncode == 0, exported.stderr
    doc = json.loads(exported.stdout)
    assert (doc["format"], doc["version"]) == ("crontrio.jobs", 1)
    by_name = {j["name"]: j for j in doc["jobs"]}
    assert by_name["xp-up"]["env"] == {"TOKEN": "s3cret"}  # revealed: the real value
    assert by_name["xp-up"]["enabled"] is False and by_name["xp-up"]["retries"] == 2
    path = tmp_path / "jobs.json"
    path.write_text(exported.stdout)

    again = ok_json(t, "job", "import", str(path))
    assert again == {
        "dry_run": False,
        "stored": True,
        "jobs": [{"name": "xp-up", "action": "unchanged"}, {"name": "xp-down", "action": "unchanged"}],
    }
    audit_before = len(ok_json(t, "audit", "list", "--limit", "1000"))

    by_name["xp-up"]["retries"] = 5
    path.write_text(json.dumps(doc))
    conflict = t.cronctl("job", "import", str(path))
    assert conflict.returncode == 1 and "xp-up" in conflict.stderr and "--update" in conflict.stderr
    assert ok_json(t, "job", "show", "xp-up")["retries"] == 2
    dry = ok_json(t, "job", "import", str(path), "--update", "--dry-run")
    assert dry["stored"] is False and {"name": "xp-up", "action": "update"} in dry["jobs"]
    assert ok_json(t, "job", "show", "xp-up")["retries"] == 2
    # the reveals of planning are audited; nothing else was written
    entries = ok_json(t, "audit", "list", "--limit", "1000")
    assert {e["action"] for e in entries[: len(entries) - audit_before]} <= {"job.reveal"}
    ok(t, "job", "import", str(path), "--update")
    assert ok_json(t, "job", "show", "xp-up")["retries"] == 5

    # Into an empty place: upstream created before its dependent, secrets real.
    ok(t, "job", "delete", "xp-down")
    ok(t, "job", "delete", "xp-up")
    created = ok_json(t, "job", "import", str(path))
    assert [j["action"] for j in created["jobs"]] == ["create", "create"]
    assert ok_json(t, "job", "show", "xp-up", "--reveal")["env"] == {"TOKEN": "s3cret"}
    assert ok_json(t, "job", "show", "xp-down")["after"] == ["xp-up:always"]


def test_import_of_a_file_with_any_bad_job_stores_nothing(busy_trio: Trio, tmp_path: Path) -> None:
    t = busy_trio
    good = {"name": "imp-good", "spec": "@daily", "command": "true"}
    bad_field = {"name": "imp-bad", "spec": "@daily", "command": "true", "timeout_seconds": -5}
    orphan = {"name": "imp-orphan", "spec": "@daily", "command": "true", "after": [{"job": "imp-missing"}]}
    for bad, said in ((bad_field, "job imp-bad: timeout:"), (orphan, "job imp-orphan: after: no job named 'imp-missing'")):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({"format": "crontrio.jobs", "version": 1, "jobs": [good, bad]}))
        result = t.cronctl("job", "import", str(path))
        assert result.returncode == 2, result.stderr
        assert said in result.stderr and "nothing stored" in result.stderr
        assert ok_json(t, "job", "list", "--prefix", "imp-") == []


# ------------------------------------------------------------ runs


def test_job_run_skipped_by_overlap_says_so_and_exit_codes_only_for_runs_that_ran(busy_trio: Trio, tmp_path: Path) -> None:
    t = busy_trio
    go = tmp_path / "go"
    ok(
        t,
        "job",
        "add",
        "--name",
        "overlapper",
        "--spec",
        "@yearly",
        "--overlap",
        "skip",
        "--command",
        f"while [ ! -e {go} ]; do sleep 0.05; done",
    )
    first = ok_json(t, "job", "run", "overlapper")
    assert first["status"] in ("pending", "running", "started")
    wait_for(
        lambda: t.sql("SELECT 1 FROM runs WHERE run_id = ? AND status = 'running'", (first["run_id"],)), 15, "run 1 to start"
    )
    skipped = t.cronctl("job", "run", "overlapper")
    assert skipped.returncode == 1, (skipped.stdout, skipped.stderr)
    assert "did not run" in skipped.stderr and f"cronctl run tail -f {first['run_id']}" in skipped.stderr
    as_json = t.cronctl("job", "run", "overlapper", "--json")
    assert as_json.returncode == 1 and as_json.stdout == ""
    error = json.loads(as_json.stderr)["error"]
    assert error["exit_code"] == 1 and f"run tail -f {first['run_id']}" in error["message"]

    going = ok_json(t, "run", "list", "--job", "overlapper", "--running")
    assert [r["run_id"] for r in going] == [first["run_id"]]
    runs = ok_json(t, "run", "list", "--job", "overlapper")
    assert {r["status"] for r in runs} == {"running", "skipped"}
    assert all(r["exit_code"] is None for r in runs)  # neither has an exit code yet
    table = ok(t, "run", "list", "--job", "overlapper")
    skipped_rows = [line.split() for line in table.splitlines() if " skipped " in line]
    assert skipped_rows and all(row[4] != "0" for row in skipped_rows)  # the EXIT column is empty
    go.touch()
    wait_for(lambda: not ok_json(t, "run", "list", "--job", "overlapper", "--running"), 15, "run 1 to end")
    done = {r["run_id"]: r for r in ok_json(t, "run", "list", "--job", "overlapper")}
    assert done[first["run_id"]]["exit_code"] == 0
    assert ok_json(t, "run", "show", first["run_id"])["exit_code"] == 0
    skipped_id = next(r for r in done if r != first["run_id"])
    assert ok_json(t, "run", "show", skipped_id)["exit_code"] is None
    assert "did not run" not in ok(t, "job", "run", "overlapper")  # nothing running now: it starts


# ------------------------------------------------------------ job edit / delete / add


def test_env_add_and_remove_merge_keeping_secrets_and_env_replaces(busy_trio: Trio) -> None:
    t = busy_trio
    ok(t, "job", "add", "--name", "envy", "--spec", "@daily", "--command", "true", "--env", "A=1", "--env", "SECRET=x")
    said = ok(t, "job", "edit", "envy", "--env-add", "B=2", "--env-remove", "A")
    assert "merged into the job's environment" in said and "added B" in said and "removed A" in said
    assert ok_json(t, "job", "show", "envy", "--reveal")["env"] == {"B": "2", "SECRET": "x"}  # the secret kept
    said = ok(t, "job", "edit", "envy", "--env", "C=3")
    assert "replaced the job's whole environment" in said and "removed B, SECRET" in said
    assert ok_json(t, "job", "show", "envy", "--reveal")["env"] == {"C": "3"}
    both = t.cronctl("job", "edit", "envy", "--env", "D=4", "--env-add", "E=5")
    assert both.returncode == 2 and "env:" in both.stderr
    missing = t.cronctl("job", "edit", "envy", "--env-remove", "NOPE")
    assert missing.returncode == 2 and "NOPE" in missing.stderr


def test_deleting_an_upstream_needs_force(busy_trio: Trio) -> None:
    t = busy_trio
    ok(t, "job", "add", "--name", "del-up", "--spec", "@daily", "--command", "true")
    ok(t, "job", "add", "--name", "del-down", "--spec", "", "--after", "del-up", "--command", "true")
    refused = t.cronctl("job", "delete", "del-up")
    assert refused.returncode == 1 and "del-down" in refused.stderr and "--force" in refused.stderr
    assert ok_json(t, "job", "show", "del-up")["name"] == "del-up"
    forced = t.cronctl("job", "delete", "del-up", "--force")
    assert forced.returncode == 0 and "warning:" in forced.stderr and "del-down" in forced.stderr
    assert t.cronctl("job", "show", "del-up").returncode == 1


def test_a_target_no_live_executor_matches_warns_at_add(busy_trio: Trio) -> None:
    t = busy_trio
    nowhere = t.cronctl("job", "add", "--name", "tgt-none", "--spec", "@daily", "--command", "true", "--target", "nohost:1")
    assert nowhere.returncode == 0 and "matches no live executor" in nowhere.stderr
    grouped = t.cronctl("job", "add", "--name", "tgt-group", "--spec", "@daily", "--command", "true", "--target", "group:nope")
    assert "matches no live executor" in grouped.stderr
    there = t.cronctl("job", "add", "--name", "tgt-one", "--spec", "@daily", "--command", "true", "--target", t.executor)
    assert there.returncode == 0 and "warning" not in there.stderr, there.stderr
    moved = t.cronctl("job", "edit", "tgt-one", "--target", "elsewhere:1")
    assert moved.returncode == 0 and "matches no live executor" in moved.stderr


# ------------------------------------------------------------ servers and errors


def test_pointing_at_an_executor_says_so(busy_trio: Trio) -> None:
    alone = cronctl("job", "list", server=busy_trio.executor)
    assert alone.returncode == 3 and "that is an executor, not a dispatcher" in alone.stderr, alone.stderr
    # with a dispatcher listed after it, the command goes on there
    both = AdminClient([busy_trio.executor, busy_trio.dispatcher])
    assert both.call(lambda s: s.ListJobs, pb.ListJobsRequest(limit=1)) is not None


@pytest.fixture
def hung_server() -> Iterator[str]:
    """A socket that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def test_a_hung_dispatcher_is_passed_over_within_2_seconds(busy_trio: Trio, hung_server: str) -> None:
    client = AdminClient([hung_server, busy_trio.dispatcher])
    started = time.monotonic()
    client.call(lambda s: s.ListJobs, pb.ListJobsRequest(limit=1))
    took = time.monotonic() - started
    assert took < 4.0, f"failover took {took:.1f} s"  # 2 s on the hung one, then the answer
    alone = cronctl("job", "list", server=hung_server)
    assert alone.returncode == 3 and "no answer within 2 s" in alone.stderr


def test_errors_with_json_are_json_on_stderr(busy_trio: Trio) -> None:
    missing = busy_trio.cronctl("--json", "job", "show", "no-such-job")
    assert missing.returncode == 1 and missing.stdout == ""
    error = json.loads(missing.stderr)["error"]
    assert error["exit_code"] == 1 and "no-such-job" in error["message"]
    invalid = busy_trio.cronctl("job", "add", "--name", "j-bad", "--spec", "61 * * * *", "--command", "true", "--json")
    assert invalid.returncode == 2 and invalid.stdout == ""
    assert json.loads(invalid.stderr)["error"]["field"] == "spec"


def test_a_server_without_port_gets_the_default_port(busy_trio: Trio, monkeypatch: pytest.MonkeyPatch) -> None:
    # The dispatcher's port stands in for 5920 (a fixed port is not ours to take).
    import crontrio.cronctl.client  # noqa: F401 - loads cronctl.client for the name below
    from crontrio import cronctl
    from crontrio.cronctl.main import cli

    monkeypatch.setattr(cronctl.client, "DEFAULT_PORT", int(busy_trio.dispatcher.rsplit(":", 1)[1]))
    result = CliRunner().invoke(cli, ["--server", "127.0.0.1", "job", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.output), list)


def test_a_server_without_port_means_5920() -> None:
    assert with_default_port("disp1") == "disp1:5920"
    assert with_default_port("disp1:7000") == "disp1:7000"
    assert with_default_port("[::1]") == "[::1]:5920"
    assert with_default_port("::1") == "[::1]:5920"
    assert with_default_port("[::1]:7000") == "[::1]:7000"
