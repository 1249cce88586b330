"""Console users and sessions on a real dispatcher process: the first admin,
Login/Logout/WhoAmI, roles, audit under the user's name, the login throttle,
password changes, disabling, and `cronctl user`."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from crontrio.common.auth import hash_token
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc
from testing_support.services import REPO
from testing_support.trio import Trio, make_trio, stop_trio

ADMIN_TOKEN = "test-admin-api-token"


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def initial_password(t: Trio) -> str:
    return (t.root / "var" / "initial-admin-password").read_text().strip()


@pytest.fixture(scope="module")
def lone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    """A dispatcher alone, no [tokens] (loopback, local admin), fresh store."""
    t = make_trio(tmp_path_factory.mktemp("users"))
    try:
        t.start("dispatcher")
        yield t
    finally:
        stop_trio(t)


@pytest.fixture
def admin(lone: Trio) -> Iterator[pb_grpc.AdminStub]:
    with grpc.insecure_channel(lone.dispatcher) as channel:
        yield pb_grpc.AdminStub(channel)


def login(stub: pb_grpc.AdminStub, user: str, password: str) -> pb.LoginReply:
    return stub.Login(pb.LoginRequest(user=user, password=password), timeout=30)


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()  # type: ignore[operator]
    return err.value.code()  # type: ignore[no-any-return]


def test_first_start_creates_admin_with_a_random_password_logged_once_and_in_a_0600_file(lone: Trio) -> None:
    path = lone.root / "var" / "initial-admin-password"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    password = initial_password(lone)
    assert len(password) >= 20
    log = lone.procs["dispatcher"].log_text()
    assert log.count(password) == 1 and str(path) in log


def test_login_whoami_logout(admin: pb_grpc.AdminStub, lone: Trio) -> None:
    reply = login(admin, "admin", initial_password(lone))
    assert reply.token.startswith("cts_") and reply.role == "admin" and reply.user == "admin"
    me = admin.WhoAmI(pb.WhoAmIRequest(), metadata=bearer(reply.token))
    assert (me.name, me.role, me.kind) == ("admin", "admin", "session") and me.expires_ms == reply.expires_ms
    assert admin.WhoAmI(pb.WhoAmIRequest()).kind == "local"  # no token, no [tokens]: loopback local admin
    # Only a hash is stored.
    assert reply.token not in json.dumps(lone.sql("SELECT * FROM sessions"))
    assert admin.Logout(pb.LogoutRequest(), metadata=bearer(reply.token)).ended
    assert code_of(lambda: admin.WhoAmI(pb.WhoAmIRequest(), metadata=bearer(reply.token))) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: admin.Logout(pb.LogoutRequest())) == grpc.StatusCode.FAILED_PRECONDITION


def test_failed_logins_say_nothing_about_the_user_are_audited_and_slowed_down(admin: pb_grpc.AdminStub, lone: Trio) -> None:
    details = set()
    for user in ("nosuchuser", "admin"):
        with pytest.raises(grpc.RpcError) as err:
            login(admin, user, "wrong password!")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        details.add(err.value.details())
    assert details == {"wrong user name or password"}
    failed = lone.sql("SELECT actor, target FROM audit_log WHERE action = 'user.login_failed'")
    assert ("nosuchuser",) in [(t,) for _, t in failed] and all(a.startswith("anonymous@") for a, _ in failed)
    # An unknown name is throttled just like a known one.
    for _ in range(4):
        assert code_of(lambda: login(admin, "ghost", "wrong password!")) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: login(admin, "ghost", "wrong password!")) == grpc.StatusCode.UNAUTHENTICATED  # the 5th
    with pytest.raises(grpc.RpcError) as err:
        login(admin, "ghost", "wrong password!")
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "try again in" in (err.value.details() or "")
    assert code_of(lambda: login(admin, "", "x")) == grpc.StatusCode.INVALID_ARGUMENT


def test_roles_and_audit_under_the_user_name(admin: pb_grpc.AdminStub, lone: Trio) -> None:
    root = login(admin, "admin", initial_password(lone)).token
    admin.CreateUser(pb.CreateUserRequest(name="vera", role="viewer", password="vera-password-1"), metadata=bearer(root))
    admin.CreateUser(pb.CreateUserRequest(name="otto", role="operator", password="otto-password-1"), metadata=bearer(root))
    with pytest.raises(grpc.RpcError) as err:
        admin.CreateUser(pb.CreateUserRequest(name="bad name", role="viewer", password="long enough!"), metadata=bearer(root))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and (err.value.details() or "").startswith("name:")
    with pytest.raises(grpc.RpcError) as err:
        admin.CreateUser(pb.CreateUserRequest(name="x", role="viewer", password="short"), metadata=bearer(root))
    assert (err.value.details() or "").startswith("password:")
    assert not lone.sql("SELECT 1 FROM users WHERE name IN ('x', 'bad name')")
    vera = login(admin, "vera", "vera-password-1").token
    otto = login(admin, "otto", "otto-password-1").token
    job = pb.Job(name="by-session", spec="@yearly", command="true")
    assert code_of(lambda: admin.CreateJob(job, metadata=bearer(vera))) == grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: admin.ListUsers(pb.ListUsersRequest(), metadata=bearer(otto))) == grpc.StatusCode.PERMISSION_DENIED
    admin.CreateJob(job, metadata=bearer(root))
    admin.PauseJob(pb.JobRef(name="by-session"), metadata=bearer(otto))
    admin.ListJobs(pb.ListJobsRequest(), metadata=bearer(vera))
    actors = lone.sql("SELECT action, actor FROM audit_log WHERE target = 'by-session' ORDER BY id")
    assert actors == [("job.create", "admin"), ("job.pause", "otto")]
    names = [u.name for u in admin.ListUsers(pb.ListUsersRequest(), metadata=bearer(root)).users]
    assert names == ["admin", "otto", "vera"]


def test_own_password_change_needs_the_current_one_and_disable_ends_sessions(admin: pb_grpc.AdminStub, lone: Trio) -> None:
    root = login(admin, "admin", initial_password(lone)).token
    admin.CreateUser(pb.CreateUserRequest(name="pia", role="viewer", password="pia-password-1"), metadata=bearer(root))
    pia = login(admin, "pia", "pia-password-1").token
    other = login(admin, "pia", "pia-password-1").token
    change = pb.SetUserPasswordRequest(name="pia", password="pia-password-2", current_password="wrong one")
    with pytest.raises(grpc.RpcError) as err:
        admin.SetUserPassword(change, metadata=bearer(pia))
    assert (err.value.details() or "").startswith("current_password:")
    foreign = pb.SetUserPasswordRequest(name="admin", password="hijacked-pw-1")
    assert code_of(lambda: admin.SetUserPassword(foreign, metadata=bearer(pia))) == grpc.StatusCode.PERMISSION_DENIED
    change.current_password = "pia-password-1"
    admin.SetUserPassword(change, metadata=bearer(pia))
    admin.WhoAmI(pb.WhoAmIRequest(), metadata=bearer(pia))  # this session stays ...
    assert code_of(lambda: admin.WhoAmI(pb.WhoAmIRequest(), metadata=bearer(other))) == grpc.StatusCode.UNAUTHENTICATED
    login(admin, "pia", "pia-password-2")
    # An admin changing their own password in a session needs the current one too.
    own = pb.SetUserPasswordRequest(name="admin", password="admin-password-2")
    assert code_of(lambda: admin.SetUserPassword(own, metadata=bearer(root))) == grpc.StatusCode.INVALID_ARGUMENT
    admin.DisableUser(pb.UserRef(name="pia"), metadata=bearer(root))
    assert code_of(lambda: admin.WhoAmI(pb.WhoAmIRequest(), metadata=bearer(pia))) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: login(admin, "pia", "pia-password-2")) == grpc.StatusCode.UNAUTHENTICATED
    myself = code_of(lambda: admin.DisableUser(pb.UserRef(name="admin"), metadata=bearer(root)))
    assert myself == grpc.StatusCode.FAILED_PRECONDITION


def test_cronctl_user_commands(lone: Trio) -> None:
    def cronctl(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "crontrio.cronctl.main", "--server", lone.dispatcher, *args],
            cwd=REPO,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    added = cronctl("user", "add", "carla", "--role", "operator", "--password-stdin", stdin="carla-password-1\n")
    assert added.returncode == 0, added.stderr
    bad = cronctl("user", "add", "carl2", "--role", "operator", "--password-stdin", stdin="short\n")
    assert bad.returncode == 2 and "password:" in bad.stderr
    listed = json.loads(cronctl("user", "list", "--json").stdout)
    carla = next(u for u in listed if u["name"] == "carla")
    assert (carla["role"], carla["disabled"]) == ("operator", False)
    assert cronctl("user", "passwd", "carla", "--password-stdin", stdin="carla-password-2\n").returncode == 0
    assert cronctl("user", "disable", "carla").returncode == 0
    assert next(u for u in json.loads(cronctl("user", "list", "--json").stdout) if u["name"] == "carla")["disabled"]
    assert "password_hash" not in cronctl("user", "list", "--json").stdout


def test_with_tokens_login_is_open_and_sessions_work_beside_api_tokens(tmp_path: Path) -> None:
    t = make_trio(tmp_path, extra={"tokens": {"ops": f"admin:{hash_token(ADMIN_TOKEN)}"}})
    try:
        t.start("dispatcher")
        with grpc.insecure_channel(t.dispatcher) as channel:
            stub = pb_grpc.AdminStub(channel)
            assert code_of(lambda: stub.WhoAmI(pb.WhoAmIRequest())) == grpc.StatusCode.UNAUTHENTICATED
            session = login(stub, "admin", initial_password(t)).token
            assert stub.WhoAmI(pb.WhoAmIRequest(), metadata=bearer(session)).kind == "session"
            me = stub.WhoAmI(pb.WhoAmIRequest(), metadata=bearer(ADMIN_TOKEN))
            assert (me.name, me.kind) == ("ops", "token")
            forged = code_of(lambda: stub.WhoAmI(pb.WhoAmIRequest(), metadata=bearer("cts_forged")))
            assert forged == grpc.StatusCode.UNAUTHENTICATED
        assert re.search(r"created user 'admin' with password \S+", t.procs["dispatcher"].log_text())
    finally:
        stop_trio(t)
