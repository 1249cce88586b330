"""Bearer tokens and roles on the admin API, loopback-only without tokens,
TLS for the admin API and mutual TLS to executors: real service processes,
a CA and certificates made with the openssl CLI."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crontrio.common.auth import (
    METHOD_ROLES,
    AuthInterceptor,
    TokenTable,
    admin_listen_address,
    bearer_token,
    current_actor,
    hash_token,
    required_role,
)
from crontrio.common.grpc_server import ServiceServer
from crontrio.cronctl.client import AdminClient, AuthError
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc
from testing_support.services import REPO, ServiceProcess, free_port, wait_for, write_conf

# ------------------------------------------------------------------ PKI


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path  # the services' certificate: server and client, SAN 127.0.0.1 + localhost
    key: Path
    client_cert: Path  # a plain client certificate from the same CA
    client_key: Path
    rogue_cert: Path  # signed by another CA
    rogue_key: Path

    def read(self, path: Path) -> bytes:
        return path.read_bytes()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_ca(d: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=crontrio test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip


def _make_leaf(d: Path, name: str, ca: str, usage: str, san: str = "") -> None:
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=d,
    )  # fmt: skip
    ext = d / f"{name}.ext"
    lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment", f"extendedKeyUsage={usage}"]
    if san:
        lines.append(f"subjectAltName={san}")
    ext.write_text("\n".join(lines) + "\n")
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
        "-out", f"{name}.pem", "-days", "2", "-extfile", ext.name,
        cwd=d,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    _make_ca(d, "ca")
    _make_leaf(d, "service", "ca", "serverAuth,clientAuth", "IP:127.0.0.1,DNS:localhost")
    _make_leaf(d, "client", "ca", "clientAuth")
    _make_ca(d, "rogue-ca")
    _make_leaf(d, "rogue", "rogue-ca", "serverAuth,clientAuth", "IP:127.0.0.1,DNS:localhost")
    return Pki(
        ca=d / "ca.pem",
        cert=d / "service.pem",
        key=d / "service.key",
        client_cert=d / "client.pem",
        client_key=d / "client.key",
        rogue_cert=d / "rogue.pem",
        rogue_key=d / "rogue.key",
    )


# ------------------------------------------------------------- services


def health_status(address: str, credentials: grpc.ChannelCredentials | None = None, timeout: float = 2.0) -> str:
    """SERVING / NOT_SERVING of a server; raises grpc.RpcError if the call fails."""
    channel = grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
    with channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def clean_env(**extra: str) -> dict[str, str]:
    """Our environment without CRONTRIO_* (a developer's token must not leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONTRIO_")}
    env.update(extra)
    return env


@dataclass
class Stack:
    root: Path
    conf: Path
    dispatcher: str
    executor: str
    monitor: str
    http: str
    dispatcher_creds: grpc.ChannelCredentials | None = None  # how the test reaches them
    executor_creds: grpc.ChannelCredentials | None = None
    procs: dict[str, ServiceProcess] = field(default_factory=dict)

    def start(self, name: str, env: dict[str, str] | None = None, address: str = "") -> ServiceProcess:
        service = name.rstrip("0123456789")
        proc = ServiceProcess(service, self.conf, self.root / f"{name}.log", env=clean_env(**(env or {})))
        self.procs[name] = proc
        address = address or {"dispatcher": self.dispatcher, "executor": self.executor, "monitor": self.monitor}[service]
        creds = {"dispatcher": self.dispatcher_creds, "executor": self.executor_creds}.get(service)
        try:
            wait_for(lambda: proc.proc.poll() is None and health_status(address, creds, 1) == "SERVING", 20, f"{name} to serve")
        except AssertionError:
            raise AssertionError(f"{name} did not start; its log:\n{proc.log_text()}") from None
        return proc

    def cronctl(
        self, *args: str, token: str = "", ca: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        opts = ["--server", self.dispatcher]
        if token:
            opts += ["--token", token]
        if ca:
            opts += ["--ca", str(ca)]
        return subprocess.run(
            [sys.executable, "-m", "crontrio.cronctl.main", *opts, *args],
            cwd=REPO,
            env=clean_env(**(env or {})),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.root / "crontrio.db", timeout=30) as conn:
            rows = conn.execute(statement, params).fetchall()
            conn.commit()
        return rows

    def log(self, name: str) -> str:
        return self.procs[name].log_text()

    def stop(self) -> None:
        # The monitor and dispatchers first: nothing is routed to a stopping executor.
        order = sorted(self.procs, key=lambda n: ("monitor", "dispatcher", "executor").index(n.rstrip("0123456789")))
        codes = {name: self.procs[name].stop() for name in order}
        print("\n".join(f"===== {n}\n{p.log_text()}" for n, p in self.procs.items()))  # shown when a test fails
        bad = {name: code for name, code in codes.items() if code != 0}
        assert not bad, f"services did not stop cleanly on SIGTERM: {bad}"


def make_stack(
    root: Path,
    *,
    tokens: dict[str, str] | None = None,
    pki: Pki | None = None,
    admin_tls: bool = False,
    internal_tls: bool = False,
    dispatcher_host: str = "127.0.0.1",
) -> Stack:
    ports = {name: free_port() for name in ("dispatcher", "executor", "monitor", "http")}
    sections: dict[str, dict[str, str]] = {
        "database": {"driver": "sqlite", "path": str(root / "crontrio.db")},
        "dispatcher": {
            "listen": f"{dispatcher_host}:{ports['dispatcher']}",
            "executors": f"127.0.0.1:{ports['executor']}",
            "shutdown_grace_seconds": "5",
        },
        "executor": {"listen": f"127.0.0.1:{ports['executor']}", "journal": str(root / "journal.db"), "kill_grace_seconds": "1"},
        "monitor": {
            "listen": f"127.0.0.1:{ports['monitor']}",
            "http_listen": f"127.0.0.1:{ports['http']}",
            "dispatchers": f"127.0.0.1:{ports['dispatcher']}",
            "poll_interval_seconds": "0.2",
            "health_interval_seconds": "0.5",
        },
        "log": {"level": "DEBUG"},
    }
    if tokens:
        sections["tokens"] = dict(tokens)
    if pki and (admin_tls or internal_tls):
        sections["tls"] = {
            "ca_file": str(pki.ca),
            "cert_file": str(pki.cert),
            "key_file": str(pki.key),
            "admin": str(admin_tls).lower(),
            "internal": str(internal_tls).lower(),
        }
    stack = Stack(
        root=root,
        conf=write_conf(root, sections),
        dispatcher=f"127.0.0.1:{ports['dispatcher']}",
        executor=f"127.0.0.1:{ports['executor']}",
        monitor=f"127.0.0.1:{ports['monitor']}",
        http=f"127.0.0.1:{ports['http']}",
    )
    if pki and admin_tls:
        stack.dispatcher_creds = grpc.ssl_channel_credentials(pki.read(pki.ca))
    if pki and internal_tls:
        stack.executor_creds = grpc.ssl_channel_credentials(pki.read(pki.ca), pki.read(pki.client_key), pki.read(pki.client_cert))
    return stack


def new_token(name: str, role: str) -> tuple[str, str]:
    """(token, its [tokens] value) made by `cronctl token new`, as an operator would."""
    out = subprocess.run(
        [sys.executable, "-m", "crontrio.cronctl.main", "token", "new", name, role],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    token, line = out[0], out[1]
    key, _, value = line.partition(" = ")
    assert key == name and value.startswith(f"{role}:"), line
    return token, value


def wait_run(stack: Stack, job: str, token: str, ca: Path | None = None, status: str = "succeeded") -> dict[str, object]:
    def finished() -> dict[str, object] | None:
        res = stack.cronctl("run", "list", "--job", job, "--json", token=token, ca=ca)
        assert res.returncode == 0, res.stderr
        runs = [r for r in json.loads(res.stdout) if r["status"] == status]
        return runs[0] if runs else None

    return wait_for(finished, 20, f"a {status} run of {job}", interval=0.3)


# ------------------------------------------------------- tokens and roles


@pytest.fixture(scope="module")
def tokens() -> dict[str, tuple[str, str]]:
    """name -> (token, conf value) for one admin, one operator, one viewer."""
    return {name: new_token(name, role) for name, role in (("root", "admin"), ("ops", "operator"), ("eve", "viewer"))}


@pytest.fixture
def token_stack(tmp_path: Path, tokens: dict[str, tuple[str, str]]) -> Iterator[Stack]:
    stack = make_stack(tmp_path, tokens={name: value for name, (_, value) in tokens.items()})
    try:
        stack.start("executor")
        stack.start("dispatcher")
        stack.start("monitor", env={"CRONTRIO_MONITOR_TOKEN": tokens["root"][0]})
        yield stack
    finally:
        stack.stop()


def test_roles_decide_what_a_token_may_do(token_stack: Stack, tokens: dict[str, tuple[str, str]]) -> None:
    s = token_stack
    admin, operator, viewer = tokens["root"][0], tokens["ops"][0], tokens["eve"][0]
    assert "admin API requires bearer tokens (3 configured)" in s.log("dispatcher")
    job = ["job", "add", "--name", "hello", "--spec", "0 0 1 1 *", "--command", "echo hello"]

    # viewer: reads, cannot add
    res = s.cronctl("job", "list", token=viewer)
    assert res.returncode == 0, res.stderr
    res = s.cronctl(*job, token=viewer)
    assert res.returncode == 4, res
    assert "permission denied" in res.stderr and "requires role admin" in res.stderr and "'eve' has role viewer" in res.stderr

    # operator: cannot create either; admin can
    res = s.cronctl(*job, token=operator)
    assert res.returncode == 4 and "requires role admin" in res.stderr, res
    res = s.cronctl(*job, token=admin)
    assert res.returncode == 0, res.stderr

    # operator: runs, pauses, resumes; may not delete
    for args in (["job", "run", "hello"], ["job", "pause", "hello"], ["job", "resume", "hello"]):
        res = s.cronctl(*args, token=operator)
        assert res.returncode == 0, (args, res.stderr)
    res = s.cronctl("job", "delete", "hello", token=operator)
    assert res.returncode == 4 and "DeleteJob requires role admin" in res.stderr, res
    res = s.cronctl("job", "pause", "hello", token=viewer)
    assert res.returncode == 4 and "PauseJob requires role operator" in res.stderr, res
    run = wait_run(s, "hello", viewer)  # the operator's run happened; the viewer sees it

    # A server-streaming call (TailRun) goes through the same checks.
    tail = pb.TailRunRequest(run_id=str(run["run_id"]))
    chunks = list(AdminClient([s.dispatcher], token=viewer).stream(lambda st: st.TailRun, tail))
    assert b"hello" in b"".join(c.data for c in chunks)
    with pytest.raises(AuthError, match="missing bearer token"):
        list(AdminClient([s.dispatcher]).stream(lambda st: st.TailRun, tail))
    # The servicers know who called (the audit log records the token name).
    audit = AdminClient([s.dispatcher], token=viewer).call(lambda st: st.ListAudit, pb.ListAuditRequest(target="hello"))
    actors = {(e.action, e.actor) for e in audit.entries}
    assert ("job.create", "root") in actors and ("job.run", "ops") in actors, actors

    # no token, a wrong one, a garbled header
    res = s.cronctl("job", "list")
    assert res.returncode == 4 and "missing bearer token" in res.stderr and "--token" in res.stderr, res
    res = s.cronctl("job", "list", token="not-a-configured-token")
    assert res.returncode == 4 and "unknown token" in res.stderr, res
    with grpc.insecure_channel(s.dispatcher) as channel:
        stub = pb_grpc.AdminStub(channel)
        for metadata in ((("authorization", f"Basic {admin}"),), (("authorization", "Bearer"),), ()):
            with pytest.raises(grpc.RpcError) as err:
                stub.ListJobs(pb.ListJobsRequest(), metadata=metadata, timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Health and reflection need no token.
        assert health_status(s.dispatcher) == "SERVING"
        assert stub.ListJobs(pb.ListJobsRequest(), metadata=(("authorization", f"bearer {admin}"),), timeout=5).jobs
    # The monitor presents its token: no refusal of Control calls logged.
    assert "refused /crontrio.v1.Control" not in s.log("dispatcher")


def test_monitor_needs_its_token_for_control_calls(token_stack: Stack) -> None:
    s = token_stack
    # A job inserted by SQL is hot-loaded: the monitor's NotifyJobChanges
    # (a Control call, admin token required) got through. Without it the
    # dispatcher would only notice on its 30 s fallback reload.
    s.sql("INSERT INTO jobs (name, spec, command) VALUES ('from-sql', '* * * * * *', 'echo sql')")
    wait_for(
        lambda: s.sql("SELECT 1 FROM runs WHERE job_name = 'from-sql' AND status = 'succeeded'"),
        12,
        "the SQL-inserted job to run",
        interval=0.2,
    )
    assert "did not take job changes" not in s.log("monitor")

    # A second monitor without a token is refused, and says so.
    other, http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    s.start("monitor2", env={"CRONTRIO_MONITOR_LISTEN": other, "CRONTRIO_MONITOR_HTTP_LISTEN": http}, address=other)
    wait_for(
        lambda: "did not take job changes: missing bearer token" in s.log("monitor2"),
        10,
        "the tokenless monitor to log its refused NotifyJobChanges",
    )


# ------------------------------------------------- loopback without tokens


def _non_loopback_ip() -> str | None:
    """A local, non-loopback IPv4 address of this machine, if it has one (no traffic is sent)."""
    candidates: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, contextlib.suppress(OSError):
        probe.connect(("192.0.2.1", 9))  # UDP connect only picks a route; sends nothing
        candidates.append(probe.getsockname()[0])
    with contextlib.suppress(OSError):
        candidates += socket.gethostbyname_ex(socket.gethostname())[2]
    for ip in candidates:
        if ipaddress.ip_address(ip).is_loopback or ip == "0.0.0.0":
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((ip, 0))  # succeeds only for an address of this machine
            except OSError:
                continue
        return ip
    return None


def test_without_tokens_the_admin_api_stays_on_loopback(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, dispatcher_host="0.0.0.0")
    port = stack.dispatcher.rpartition(":")[2]
    try:
        stack.start("dispatcher")  # health-checked on 127.0.0.1
        log = stack.log("dispatcher")
        assert f"listens on 127.0.0.1:{port} instead of 0.0.0.0:{port}" in log, log
        assert "add tokens to conf.ini [tokens]" in log and "cronctl token new" in log
        res = stack.cronctl("job", "list")  # no tokens: no token needed
        assert res.returncode == 0, res.stderr
        ip = _non_loopback_ip()
        if ip is not None:  # a local address: the connection never leaves the machine
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                with pytest.raises(OSError):
                    s.connect((ip, int(port)))
    finally:
        stack.stop()


# -------------------------------------------------- TLS and mutual TLS


@pytest.fixture
def tls_stack(tmp_path: Path, pki: Pki, tokens: dict[str, tuple[str, str]]) -> Iterator[Stack]:
    """Everything on: tokens, TLS admin API, mTLS to executors."""
    stack = make_stack(
        tmp_path, tokens={name: value for name, (_, value) in tokens.items()}, pki=pki, admin_tls=True, internal_tls=True
    )
    try:
        stack.start("executor")
        stack.start("dispatcher")
        stack.start("monitor", env={"CRONTRIO_MONITOR_TOKEN": tokens["root"][0]})
        yield stack
    finally:
        stack.stop()


def test_tls_admin_api_and_mtls_to_executors(tls_stack: Stack, pki: Pki, tokens: dict[str, tuple[str, str]]) -> None:
    s = tls_stack
    admin = tokens["root"][0]
    assert "(mTLS)" in s.log("executor") and "(TLS)" in s.log("dispatcher")

    # cronctl with the CA: a job added, run on the executor (dispatcher -> executor over mTLS), recorded.
    res = s.cronctl(
        "job", "add", "--name", "tls-job", "--spec", "0 0 1 1 *", "--command", "echo over-mtls", token=admin, ca=pki.ca
    )
    assert res.returncode == 0, res.stderr
    res = s.cronctl("job", "run", "tls-job", token=admin, env={"CRONTRIO_CA": str(pki.ca)})
    assert res.returncode == 0, res.stderr
    run = wait_run(s, "tls-job", admin, pki.ca)
    assert run["executor"] == s.executor

    # The monitor reaches the executor (mTLS health checks) and the dispatcher (TLS + token).
    wait_for(lambda: f"executor {s.executor} is UP" in s.log("monitor"), 10, "the monitor to see the executor UP")
    wait_for(lambda: "is at job revision" in s.log("monitor"), 10, "the monitor to reach the dispatcher")
    # A SQL-inserted job is hot-loaded over that TLS link too.
    s.sql("INSERT INTO jobs (name, spec, command) VALUES ('tls-sql', '* * * * * *', 'true')")
    wait_for(lambda: s.sql("SELECT 1 FROM runs WHERE job_name = 'tls-sql' AND status = 'succeeded'"), 12, "tls-sql to run")

    # Without the CA cronctl cannot talk to a TLS dispatcher: exit 3 and a hint.
    res = s.cronctl("job", "list", token=admin)
    assert res.returncode == 3, res
    assert "no dispatcher reachable" in res.stderr and "--ca" in res.stderr
    # A CA that did not sign the dispatcher's certificate: refused too.
    res = s.cronctl("job", "list", token=admin, ca=pki.rogue_cert)
    assert res.returncode == 3, res

    # The executor only talks to clients with a certificate from our CA.
    ca = pki.read(pki.ca)
    with pytest.raises(grpc.RpcError) as err:
        health_status(s.executor)  # plaintext
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.RpcError) as err:
        health_status(s.executor, grpc.ssl_channel_credentials(ca))  # TLS, no client certificate
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.RpcError) as err:  # a client certificate from another CA
        health_status(s.executor, grpc.ssl_channel_credentials(ca, pki.read(pki.rogue_key), pki.read(pki.rogue_cert)))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    client = grpc.ssl_channel_credentials(ca, pki.read(pki.client_key), pki.read(pki.client_cert))
    assert health_status(s.executor, client) == "SERVING"


def test_a_bad_tls_file_stops_the_service_naming_the_key(tmp_path: Path, pki: Pki) -> None:
    bad_key = tmp_path / "not-a-key.pem"
    bad_key.write_text("this is not PEM\n")
    stack = make_stack(tmp_path, pki=pki, internal_tls=True)
    proc = subprocess.run(
        [sys.executable, "-m", "crontrio.executor", "-c", str(stack.conf)],
        cwd=tmp_path,
        env=clean_env(CRONTRIO_TLS_KEY_FILE=str(bad_key), PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "tls.key_file" in proc.stderr and "not a PEM file" in proc.stderr, proc.stderr


# --------------------------------------------- the interceptor, in process


def test_token_table_and_role_table() -> None:
    table = TokenTable({"a": f"admin:{hash_token('t-a')}", "v": f"viewer:{hash_token('t-v')}"})
    assert table.authenticate("t-a") == ("a", "admin")
    assert table.authenticate("t-v") == ("v", "viewer")
    assert table.authenticate("t-x") is None
    assert bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert bearer_token([("authorization", "Basic abc")]) is None
    assert bearer_token([]) is None
    assert required_role("/crontrio.v1.Admin/SomethingNew") == "admin"  # unknown: closed by default
    assert required_role("/grpc.health.v1.Health/Check") is None
    assert required_role("/crontrio.v1.Control/RetryRun") == "admin"
    # Every Admin RPC of the proto has an explicit entry.
    admin_methods = pb.DESCRIPTOR.services_by_name["Admin"].methods_by_name
    assert {f"/crontrio.v1.Admin/{m}" for m in admin_methods} <= set(METHOD_ROLES)


def test_loopback_decision() -> None:
    assert admin_listen_address("127.0.0.1:5920", {}) == "127.0.0.1:5920"
    assert admin_listen_address("localhost:5920", {}) == "localhost:5920"
    assert admin_listen_address("[::1]:5920", {}) == "[::1]:5920"
    assert admin_listen_address("0.0.0.0:5920", {}) == "127.0.0.1:5920"
    assert admin_listen_address("10.1.2.3:5920", {}) == "127.0.0.1:5920"
    assert admin_listen_address("0.0.0.0:5920", {"a": "admin:" + "0" * 64}) == "0.0.0.0:5920"


class _ActorEcho(pb_grpc.AdminServicer):  # type: ignore[misc]
    async def GetJob(self, request: pb.JobRef, context: grpc.aio.ServicerContext) -> pb.Job:
        return pb.Job(name=current_actor())

    async def TailRun(self, request: pb.TailRunRequest, context: grpc.aio.ServicerContext):  # type: ignore[no-untyped-def]
        for _ in range(2):
            yield pb.TailChunk(data=current_actor().encode())

    async def ListRuns(self, request: pb.ListRunsRequest, context: grpc.aio.ServicerContext) -> pb.ListRunsReply:
        return pb.ListRunsReply()


async def test_interceptor_unary_and_streaming_know_the_actor() -> None:
    tokens = {"alice": f"operator:{hash_token('alice-token')}", "bob": f"viewer:{hash_token('bob-token')}"}
    server = ServiceServer("127.0.0.1:0", ["crontrio.v1.Admin"], interceptors=[AuthInterceptor(TokenTable(tokens))])
    pb_grpc.add_AdminServicer_to_server(_ActorEcho(), server.server)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.AdminStub(channel)
            alice = (("authorization", "Bearer alice-token"),)
            bob = (("authorization", "Bearer bob-token"),)
            assert (await stub.GetJob(pb.JobRef(name="x"), metadata=alice)).name == "alice"
            assert (await stub.GetJob(pb.JobRef(name="x"), metadata=bob)).name == "bob"
            chunks = [c.data async for c in stub.TailRun(pb.TailRunRequest(run_id="r"), metadata=bob)]
            assert chunks == [b"bob", b"bob"]
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stub.TailRun(pb.TailRunRequest(run_id="r")):
                    pass
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.KillRun(pb.RunRef(run_id="r"), metadata=bob)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "KillRun requires role operator" in (err.value.details() or "")
            # Allowed but not implemented by this servicer: UNIMPLEMENTED, not a refusal.
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.KillRun(pb.RunRef(run_id="r"), metadata=alice)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert current_actor() == "local"
    finally:
        await server.stop(0)
