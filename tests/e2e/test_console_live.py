"""A run's output over the JSON API: live Server-Sent Events that resume at
the byte offset (Last-Event-ID or ?offset=) with nothing twice and nothing
lost, ending with the outcome; the output so far as JSON or text; ANSI
escapes never passed through."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from testing_support.services import wait_for
from testing_support.trio import Trio
from tests.e2e.console_helpers import (
    admin_password,
    api_token,
    bearer,
    console_trio,
    url,  # fixtures
)

__all__ = ["console_trio", "url"]
pytestmark = pytest.mark.xdist_group("console")

LINES = 12
# Each line: a number, an ANSI colour, HTML, and a multi-byte character.
COMMAND = f"for i in $(seq 1 {LINES}); do printf 'line %s \\033[31mred\\033[0m <b>x</b> é\\n' $i; sleep 0.4; done"
EXPECTED = "".join(f"line {i} red <b>x</b> é\n" for i in range(1, LINES + 1))
# Offsets count the bytes the run printed, escapes included.
RAW = b"".join(f"line {i} \x1b[31mred\x1b[0m <b>x</b> é\n".encode() for i in range(1, LINES + 1))


@pytest.fixture(scope="module")
def root(console_trio: Trio, url: str) -> httpx.Client:
    token = api_token(url, "admin", admin_password(console_trio))
    return httpx.Client(base_url=url + "/api/v1", headers=bearer(token), timeout=30)


def events(client: httpx.Client, path: str, headers: dict[str, str], stop_after_outputs: int = 0) -> Iterator[dict[str, str]]:
    """SSE events as dicts (event, id, data); stops after that many outputs when given."""
    outputs = 0
    with client.stream("GET", path, headers={"Accept": "text/event-stream", **headers}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        current: dict[str, str] = {}
        for line in response.iter_lines():
            if line == "":
                if "event" in current:
                    yield current
                    if current["event"] == "output":
                        outputs += 1
                        if stop_after_outputs and outputs >= stop_after_outputs:
                            return
                    if current["event"] in ("end", "failure"):
                        return
                current = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            current[name] = value


def test_live_output_resumes_at_the_offset_and_ends_with_the_outcome(root: httpx.Client) -> None:
    assert root.post("/jobs", json={"name": "printer", "spec": "@yearly", "command": COMMAND}).status_code == 201
    run_id = root.post("/jobs/printer/run").json()["firstRunId"]
    wait_for(lambda: root.get(f"/runs/{run_id}").json().get("status") == "running", 20, "the run to start")
    wait_for(lambda: "line 1 " in root.get(f"/runs/{run_id}/output").json()["text"], 20, "the first line")
    so_far = root.get(f"/runs/{run_id}/output").json()
    assert so_far["status"] == "" and EXPECTED.startswith(so_far["text"]) and so_far["text"] != EXPECTED  # still going
    first = list(events(root, f"/runs/{run_id}/output", {}, stop_after_outputs=2))
    assert [e["event"] for e in first] == ["output", "output"]
    text = "".join(json.loads(e["data"])["text"] for e in first)
    offset = int(first[-1]["id"])
    assert RAW[:offset].decode().replace("\x1b[31m", "").replace("\x1b[0m", "") == text
    assert offset < len(RAW), "the run was still printing"
    # A dropped connection: EventSource comes back with Last-Event-ID.
    rest = list(events(root, f"/runs/{run_id}/output", {"Last-Event-ID": str(offset)}))
    assert rest[-1]["event"] == "end" and json.loads(rest[-1]["data"])["status"] == "succeeded"
    text += "".join(json.loads(e["data"])["text"] for e in rest if e["event"] == "output")
    assert text == EXPECTED  # nothing twice, nothing lost, escapes stripped
    assert int(rest[-1]["id"]) == len(RAW)
    # A reload of the page resumes with ?offset= (the whole output minus a prefix).
    cut = RAW.index(b"line 2")
    again = list(events(root, f"/runs/{run_id}/output?offset={cut}", {}))
    resumed = "".join(json.loads(e["data"])["text"] for e in again if e["event"] == "output")
    assert resumed == EXPECTED[EXPECTED.index("line 2") :]
    # Without SSE: the output so far, as JSON or text.
    plain = root.get(f"/runs/{run_id}/output")
    assert plain.status_code == 200 and plain.json()["text"] == EXPECTED and plain.json()["status"] == "succeeded"
    as_text = root.get(f"/runs/{run_id}/output", headers={"Accept": "text/plain"})
    assert as_text.headers["content-type"].startswith("text/plain") and as_text.text == EXPECTED


def test_output_of_an_unknown_run_is_a_json_404(root: httpx.Client, url: str) -> None:
    missing = root.get("/runs/no-such-run/output", headers={"Accept": "text/event-stream"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    assert httpx.get(url + "/api/v1/runs/no-such-run/output").status_code == 401
