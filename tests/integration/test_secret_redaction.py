"""Secrets in jobs (env values, HTTP header values) through the real admin API
with viewer, operator and admin tokens: redacted in replies and audit copies,
revealed only to an admin who asks, never overwritten by their placeholder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc
from tests.integration.test_auth_tls import Stack, make_stack, new_token

SECRET, HEADER_SECRET = "s3cret-value", "Bearer abc123"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Stack, dict[str, str]]]:
    made = {role: new_token(f"t-{role}", role) for role in ("admin", "operator", "viewer")}
    s = make_stack(tmp_path, tokens={f"t-{role}": value for role, (_, value) in made.items()})
    try:
        s.start("dispatcher")
        yield s, {role: token for role, (token, _) in made.items()}
    finally:
        s.stop()


def _md(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def _code(call: object) -> grpc.StatusCode:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_secrets_are_redacted_below_admin_revealed_on_purpose_and_kept_on_round_trip(
    stack: tuple[Stack, dict[str, str]],
) -> None:
    s, tok = stack
    with grpc.insecure_channel(s.dispatcher) as channel:
        api = pb_grpc.AdminStub(channel)
        admin, operator, viewer = _md(tok["admin"]), _md(tok["operator"]), _md(tok["viewer"])
        created = api.CreateJob(
            pb.Job(name="sh", spec="@yearly", command="true", env={"API_KEY": SECRET, "MODE": "x"}), metadata=admin
        )
        api.CreateJob(
            pb.Job(
                name="web",
                spec="@yearly",
                type="http",
                command="https://example.com/hook",
                http_headers={"Authorization": HEADER_SECRET},
            ),
            metadata=admin,
        )
        assert created.secrets_redacted and dict(created.env) == {"API_KEY": "<redacted>", "MODE": "<redacted>"}

        # Every reply that carries a Job, for every role below admin.
        replies = [
            api.GetJob(pb.JobRef(name="sh"), metadata=viewer),
            api.GetJob(pb.JobRef(name="web"), metadata=operator),
            *api.ListJobs(pb.ListJobsRequest(), metadata=viewer).jobs,
            api.PauseJob(pb.JobRef(name="sh"), metadata=operator),
            api.ResumeJob(pb.JobRef(name="web"), metadata=operator),
        ]
        for job in replies:
            shown = {**job.env, **job.http_headers}
            assert shown and set(shown.values()) == {"<redacted>"} and job.secrets_redacted, job
        # Names stay visible: what a job needs is not a secret.
        assert set(replies[0].env) == {"API_KEY", "MODE"} and set(replies[1].http_headers) == {"Authorization"}

        # reveal: admins only.
        for who in (viewer, operator):
            assert _code(lambda who=who: api.GetJob(pb.JobRef(name="sh", reveal=True), metadata=who)) == (
                grpc.StatusCode.PERMISSION_DENIED
            )
        revealed = api.GetJob(pb.JobRef(name="sh", reveal=True), metadata=admin)
        assert revealed.env["API_KEY"] == SECRET and not revealed.secrets_redacted
        assert api.GetJob(pb.JobRef(name="web", reveal=True), metadata=admin).http_headers["Authorization"] == HEADER_SECRET

        # Read, change the command, send back: the placeholders keep the stored values.
        edited = api.GetJob(pb.JobRef(name="sh"), metadata=admin)
        edited.command = "echo edited"
        edited.env["MODE"] = "y"  # one value really changed
        updated = api.UpdateJob(edited, metadata=admin)
        assert updated.secrets_redacted and set(updated.env.values()) == {"<redacted>"}
        after = api.GetJob(pb.JobRef(name="sh", reveal=True), metadata=admin)
        assert after.command == "echo edited" and dict(after.env) == {"API_KEY": SECRET, "MODE": "y"}
        stored_env = json.loads(str(s.sql("SELECT env FROM jobs WHERE name = 'sh'")[0][0]))
        assert stored_env == {"API_KEY": SECRET, "MODE": "y"}
        # A placeholder with nothing stored behind it is refused, naming the key, and changes nothing.
        edited.env["NEW_KEY"] = "<redacted>"
        with pytest.raises(grpc.RpcError) as err:
            api.UpdateJob(edited, metadata=admin)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "env.NEW_KEY:" in (err.value.details() or "")
        with pytest.raises(grpc.RpcError) as err:
            api.CreateJob(pb.Job(name="copy", spec="@yearly", command="true", env={"K": "<redacted>"}), metadata=admin)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "env.K:" in (err.value.details() or "")

        # The audit log: no secret value in any copy, for anyone; changes are marked.
        entries = api.ListAudit(pb.ListAuditRequest(), metadata=admin).entries
        text = " ".join(e.before + e.after for e in entries)
        assert SECRET not in text and HEADER_SECRET not in text and "abc123" not in text
        update = next(e for e in entries if e.action == "job.update" and e.target == "sh")
        assert json.loads(update.before)["env"] == {"API_KEY": "<redacted>", "MODE": "<redacted:changed>"}
        assert json.loads(update.after)["env"] == {"API_KEY": "<redacted>", "MODE": "<redacted:changed>"}
        assert json.loads(update.after)["command"] == "echo edited"
        reveals = [e for e in entries if e.action == "job.reveal"]
        assert reveals and {e.actor for e in reveals} == {"t-admin"}

    # cronctl job show: redacted by default, --reveal for an admin only.
    shown = s.cronctl("job", "show", "sh", "--json", token=tok["admin"])
    assert shown.returncode == 0 and json.loads(shown.stdout)["env"]["API_KEY"] == "<redacted>", shown
    shown = s.cronctl("job", "show", "sh", "--reveal", "--json", token=tok["admin"])
    assert shown.returncode == 0 and json.loads(shown.stdout)["env"]["API_KEY"] == SECRET, shown
    shown = s.cronctl("job", "show", "sh", "--reveal", token=tok["viewer"])
    assert shown.returncode == 4 and "reveal: " in shown.stderr and "requires role admin" in shown.stderr, shown
    # cronctl job edit reads the redacted job and writes it back: the secret survives.
    assert s.cronctl("job", "edit", "sh", "--command", "echo again", token=tok["admin"]).returncode == 0
    assert json.loads(str(s.sql("SELECT env FROM jobs WHERE name = 'sh'")[0][0]))["API_KEY"] == SECRET
