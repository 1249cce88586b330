"""Executor task options on a real `python -m crontrio.executor`: running as an OS user,
HTTP redirects and TLS verification, output keywords."""

from __future__ import annotations

import os
import pwd
import random
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest

from crontrio.executor.keywords import KeywordScanner
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc
from testing_support.executor import (
    Executor,
    Stream,
    all_dead,
    http,
    pids_in,
    read_rest,
    read_until,
    rss_kib,
    run,
    running_executor,
    shell,
)
from testing_support.services import wait_until

NOT_ROOT_ERROR = "cannot run as user 'nobody': the executor is not running as root"
AS_ROOT = os.geteuid() == 0  # the executor runs as the same user as the tests


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Executor]:
    directory = tmp_path_factory.mktemp("executor-options")
    directory.chmod(0o700)  # the executor's working directory: root's only
    yield from running_executor(directory)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/ok":
            self._reply(200, b"hello from the test server\n")
        elif self.path == "/redirect":
            self._reply(302, b"moved\n", Location="/ok")
        else:
            self._reply(404, b"no such path\n")

    def _reply(self, code: int, body: bytes, **headers: str) -> None:
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the executor refusing our self-signed certificate is expected


def _serve(context: ssl.SSLContext | None = None) -> Iterator[str]:
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    scheme = "http"
    if context is not None:
        # The handshake happens on the first read, in the request's thread.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    yield from _serve()


@pytest.fixture(scope="module")
def https_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTPS server with a self-signed certificate made for the test."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    key_options = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key)]
    cert_options = ["-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        ["openssl", "req", "-x509", *key_options, *cert_options],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    yield from _serve(context)


# ---------------------------------------------------------------- run as a user


def assert_not_root_refusal(s: Stream) -> None:
    """What a run as another user gives when the executor is not root: a
    failure before anything was spawned."""
    assert s.finished.status == "failed" and s.finished.error == NOT_ROOT_ERROR, s.finished
    assert s.started.pid == 0 and s.finished.output_tail == b""


@pytest.mark.asyncio
async def test_run_as_nobody_has_its_identity_and_environment(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    command = 'id -un; id -u; id -g; id -G; printf "%s|%s|%s|%s|%s\\n" "$HOME" "$USER" "$LOGNAME" "$SHELL" "$EXTRA"; pwd'
    s = await run(stub, shell(command, user="nobody", workdir="/", env={"EXTRA": "kept"}))
    if not AS_ROOT:
        assert_not_root_refusal(s)
        return
    entry = pwd.getpwnam("nobody")
    assert s.finished.status == "succeeded", s.finished
    name, uid, gid, groups, env, cwd = s.finished.output_tail.decode().splitlines()
    assert (name, int(uid), int(gid)) == ("nobody", entry.pw_uid, entry.pw_gid)
    # Its own supplementary groups (initgroups), none of the executor's.
    assert {int(g) for g in groups.split()} == set(os.getgrouplist("nobody", entry.pw_gid))
    assert env == f"{entry.pw_dir}|nobody|nobody|{entry.pw_shell}|kept"
    assert cwd == "/"
    assert s.started.pid > 0 and s.finished.pid == s.started.pid


@pytest.mark.asyncio
async def test_run_as_nobody_timeout_kills_its_process_tree(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    # As in test_timeout_kills_the_whole_process_tree: a background child and
    # a TERM-ignoring nested shell that only the SIGKILL after the grace stops.
    command = "id -u; sleep 300 & echo $!; sh -c 'trap \"\" TERM; sleep 300 & echo $!; wait' & echo $!; wait"
    s = await run(stub, shell(command, user="nobody", workdir="/", timeout_seconds=1))
    if not AS_ROOT:
        assert_not_root_refusal(s)
        return
    finished = s.finished
    assert finished.status == "timeout" and finished.error == "timed out after 1s", finished
    uid, *_ = finished.output_tail.decode().splitlines()
    assert int(uid) == pwd.getpwnam("nobody").pw_uid
    pids = pids_in(finished.output_tail)[1:]
    assert len(pids) == 3, finished.output_tail
    assert await wait_until(lambda: all_dead([finished.pid, *pids]), 5, "the run's process tree to die", interval=0.05)


@pytest.mark.asyncio
async def test_run_as_unknown_user_fails(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    s = await run(stub, shell("echo never", user="no-such-user-crontrio"))
    assert s.finished.status == "failed" and s.finished.error == "unknown user 'no-such-user-crontrio'", s.finished
    assert s.started.pid == 0 and s.finished.output_tail == b""


@pytest.mark.asyncio
async def test_run_as_user_needs_a_workdir_it_can_enter(stub: crontrio_pb2_grpc.ExecutorStub, tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    s = await run(stub, shell("echo never", user="nobody", workdir=str(private)))
    if not AS_ROOT:
        assert_not_root_refusal(s)
        return
    assert s.finished.status == "failed", s.finished
    assert s.finished.error == f"workdir {str(private)!r} is not accessible to user 'nobody'"
    assert s.started.pid == 0 and s.finished.output_tail == b""
    # No workdir: the executor's own, here a root-only temporary directory.
    s = await run(stub, shell("echo never", user="nobody"))
    assert s.finished.status == "failed" and "the executor's working directory" in s.finished.error, s.finished
    assert "is not accessible to user 'nobody'" in s.finished.error and s.started.pid == 0


@pytest.mark.asyncio
async def test_run_as_own_user_needs_no_root(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    me = pwd.getpwuid(os.geteuid()).pw_name
    s = await run(stub, shell('id -un; echo "$USER"', user=me))
    assert s.finished.status == "succeeded", s.finished
    assert s.finished.output_tail == f"{me}\n{me}\n".encode()


# ---------------------------------------------------------------- HTTP options


@pytest.mark.asyncio
async def test_http_redirect_followed_only_on_request(stub: crontrio_pb2_grpc.ExecutorStub, http_base: str) -> None:
    s = await run(stub, http(f"{http_base}/redirect"))
    assert s.finished.status == "failed" and s.finished.exit_code == 302, s.finished
    assert s.finished.error == "HTTP status 302, expected 2xx"
    assert s.finished.output_tail == b"HTTP 302 Found\nmoved\n"
    s = await run(stub, http(f"{http_base}/redirect", expected_statuses=[302]))
    assert s.finished.status == "succeeded" and s.finished.exit_code == 302, s.finished
    s = await run(stub, http(f"{http_base}/redirect", follow_redirects=True))
    assert s.finished.status == "succeeded" and s.finished.exit_code == 200, s.finished
    assert s.finished.output_tail == b"HTTP 302 Found -> /ok\nHTTP 200 OK\nhello from the test server\n"


@pytest.mark.asyncio
async def test_https_self_signed_certificate(stub: crontrio_pb2_grpc.ExecutorStub, https_base: str) -> None:
    s = await run(stub, http(f"{https_base}/ok"))
    assert s.finished.status == "failed" and s.finished.exit_code == 0, s.finished
    assert s.finished.error.startswith(f"TLS certificate verification failed for {https_base}/ok: "), s.finished.error
    assert "self-signed certificate" in s.finished.error
    s = await run(stub, http(f"{https_base}/ok", skip_tls_verify=True))
    assert s.finished.status == "succeeded" and s.finished.exit_code == 200, s.finished
    assert s.finished.output_tail == b"HTTP 200 OK\nhello from the test server\n"
    # The non-verifying client's pooled connection is not reused by a verifying task.
    s = await run(stub, http(f"{https_base}/ok"))
    assert s.finished.status == "failed" and "certificate verification failed" in s.finished.error, s.finished


# ---------------------------------------------------------------- keywords


async def run_in_two_writes(
    stub: crontrio_pb2_grpc.ExecutorStub, tmp_path: Path, first: str, second: str, keywords: list[str]
) -> tuple[pb.RunFinished, list[bytes]]:
    """A command printing ``first``, then (only once the executor has streamed
    it to us, so surely in a later read) ``second``; returns the result and
    the output chunks as streamed."""
    go = tmp_path / "go"
    request = shell(f"printf '%s' '{first}'; while [ ! -e {go} ]; do sleep 0.02; done; printf '%s' '{second}'", keywords=keywords)
    call = stub.Run(request, timeout=60)
    events: list[pb.RunEvent] = []
    await read_until(call, lambda out: out.endswith(first.encode()), events)
    go.touch()
    events += await read_rest(call)
    chunks = [e.output.data for e in events if e.HasField("output")]
    assert b"".join(chunks) == (first + second).encode()
    return events[-1].finished, chunks


@pytest.mark.asyncio
async def test_keyword_straddling_two_chunks_is_found(stub: crontrio_pb2_grpc.ExecutorStub, tmp_path: Path) -> None:
    finished, chunks = await run_in_two_writes(stub, tmp_path, "step 1 ...ERR", "OR... step 2", ["ERROR"])
    assert not any(b"ERROR" in chunk for chunk in chunks), chunks  # it really was split
    assert finished.matched_keyword == "ERROR" and finished.status == "succeeded", finished


@pytest.mark.asyncio
async def test_keyword_starting_first_wins_across_chunks(stub: crontrio_pb2_grpc.ExecutorStub, tmp_path: Path) -> None:
    # "BC" is complete in the first chunk, but "ABCDEFGH" starts before it.
    finished, _ = await run_in_two_writes(stub, tmp_path, "xxABC", "DEFGHxx", ["BC", "ABCDEFGH"])
    assert finished.matched_keyword == "ABCDEFGH", finished


@pytest.mark.asyncio
async def test_keyword_early_in_huge_output_is_found(stub: crontrio_pb2_grpc.ExecutorStub, executor: Executor) -> None:
    request = shell(
        "echo 'early NEEDLE here'; yes 0123456789abcdef | head -c 52428800; echo; echo END",
        output_limit_bytes=4096,
        keywords=["not-there", "NEEDLE"],
    )
    finished = (await run(stub, request)).finished
    assert finished.status == "succeeded" and finished.output_truncated, finished.status
    assert finished.output_tail.endswith(b"\nEND\n") and b"NEEDLE" not in finished.output_tail
    assert finished.matched_keyword == "NEEDLE"
    assert rss_kib(executor.pid, "VmHWM") < 200 * 1024, f"executor peak RSS {rss_kib(executor.pid, 'VmHWM')} KiB"


@pytest.mark.asyncio
async def test_keywords_first_by_position_status_unchanged(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    out = "a first b second c third"
    s = await run(stub, shell(f"echo '{out}'; exit 3", keywords=["third", "second", "first"]))
    assert s.finished.matched_keyword == "first" and s.finished.status == "failed" and s.finished.exit_code == 3
    s = await run(stub, shell(f"echo '{out}'", keywords=["third", "second"]))
    assert s.finished.matched_keyword == "second" and s.finished.status == "succeeded"
    # Same start: the keyword listed first.
    s = await run(stub, shell("echo ERROR", keywords=["ERR", "ERROR"]))
    assert s.finished.matched_keyword == "ERR"
    s = await run(stub, shell("echo ERROR", keywords=["ERROR", "ERR"]))
    assert s.finished.matched_keyword == "ERROR"
    # Case-sensitive plain bytes, UTF-8 included; none found: empty.
    s = await run(stub, shell("echo 'error: café brûlé'", keywords=["ERROR", "brûlé"]))
    assert s.finished.matched_keyword == "brûlé"
    s = await run(stub, shell("echo all good", keywords=["ERROR", "FATAL"]))
    assert s.finished.matched_keyword == "" and s.finished.status == "succeeded"
    s = await run(stub, shell("echo ERROR"))
    assert s.finished.matched_keyword == ""


@pytest.mark.asyncio
async def test_keyword_in_http_body(stub: crontrio_pb2_grpc.ExecutorStub, http_base: str) -> None:
    s = await run(stub, http(f"{http_base}/ok", keywords=["OK", "test server"]))
    # The "HTTP 200 OK" line is the executor's, not the body's: not scanned.
    assert s.finished.status == "succeeded" and s.finished.matched_keyword == "test server", s.finished
    s = await run(stub, http(f"{http_base}/ok", keywords=["HTTP"]))
    assert s.finished.matched_keyword == ""


@pytest.mark.asyncio
async def test_matched_keyword_is_journaled_and_replayed(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    request = shell("echo 'disk FULL'", keywords=["FULL"])
    first = await run(stub, request)
    assert first.finished.matched_keyword == "FULL"
    again = await run(stub, request)
    assert again.kinds == ["finished"] and again.finished == first.finished
    listed = await stub.ListResults(pb.ListResultsRequest(run_ids=[request.run_id]))
    assert [r.matched_keyword for r in listed.results] == ["FULL"]


@pytest.mark.asyncio
async def test_oversized_keyword_is_refused(stub: crontrio_pb2_grpc.ExecutorStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await run(stub, shell("echo hi", keywords=["x" * 5000]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "keywords" in str(err.value.details())


# ---------------------------------------------------------------- the scanner itself


def _first_match(data: bytes, keywords: list[str]) -> str:
    """The reference answer: earliest start, then keyword order."""
    found = [(data.find(kw.encode()), i) for i, kw in enumerate(keywords) if kw and kw.encode() in data]
    return keywords[min(found)[1]] if found else ""


def test_scanner_result_does_not_depend_on_chunking() -> None:
    rng = random.Random(20240601)
    alphabet = b"ABCDE"
    for _ in range(400):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        keywords = ["".join(rng.choice("ABCDE") for _ in range(rng.randrange(1, 7))) for _ in range(rng.randrange(1, 4))]
        expected = _first_match(data, keywords)
        for _ in range(5):
            scanner = KeywordScanner(keywords)
            at = 0
            while at < len(data):
                size = rng.randrange(1, 9)
                scanner.feed(data[at : at + size])
                at += size
            assert scanner.matched == expected, (data, keywords)


def test_scanner_memory_is_bounded() -> None:
    scanner = KeywordScanner(["NEEDLE", "", "NEEDLE"])
    assert scanner.keywords == ["NEEDLE"]
    for _ in range(1000):
        scanner.feed(b"x" * 4096)
        assert len(scanner._carry) <= len("NEEDLE") - 1
    scanner.feed(b"NEE")
    scanner.feed(b"DLE")
    assert scanner.matched == "NEEDLE"
