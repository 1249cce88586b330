"""The shared task rules: the admin API's job validation and the executor's
request check refuse exactly the same tasks, naming the field."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from crontrio.common.errors import ValidationError
from crontrio.common.jobs import validate_job
from crontrio.common.model import Job
from crontrio.common.task_rules import MAX_TEXT_BYTES
from crontrio.common.text import EscapeControlsFilter, OutputEscaper, escape_controls
from crontrio.executor.refusals import validate_request
from crontrio.protos import crontrio_pb2 as pb

SHELL = Job(name="j", spec="* * * * *", command="true")
HTTP = Job(name="h", spec="* * * * *", command="http://example.com/", type="http")

# (case, the job, the API's field, the executor's field): each was accepted
# at add time and then failed on every run.
BAD = [
    ("header name with a newline", dataclasses.replace(HTTP, http_headers={"X-A\n": "v"}), "headers", "http.headers"),
    ("CRLF in a header value", dataclasses.replace(HTTP, http_headers={"X-A": "v\r\nX-B: w"}), "headers", "http.headers"),
    ("NUL in an env value", dataclasses.replace(SHELL, env={"A": "x\x00y"}), "env", "shell.env"),
    ("newline after an env name", dataclasses.replace(SHELL, env={"A\n": "x"}), "env", "shell.env"),
    ("101 keywords", dataclasses.replace(SHELL, keywords=tuple(f"k{i}" for i in range(101))), "keywords", "keywords"),
    ("15 MB command", dataclasses.replace(SHELL, command="echo " + "x" * 15_000_000), "command", "shell.command"),
    ("64 KiB + 1 command", dataclasses.replace(SHELL, command="x" * (MAX_TEXT_BYTES + 1)), "command", "shell.command"),
    ("NUL in a command", dataclasses.replace(SHELL, command="echo a\x00b"), "command", "shell.command"),
    ("body over 64 KiB", dataclasses.replace(HTTP, http_body="é" * 40_000), "body", "http.body"),
    ("env over 64 KiB as JSON", dataclasses.replace(SHELL, env={"A": "\x01" * 20_000}), "env", "shell.env"),
    ("trailing newline in user", dataclasses.replace(SHELL, run_as_user="root\n"), "user", "shell.user"),
    ("relative workdir", dataclasses.replace(SHELL, workdir="tmp"), "workdir", "shell.workdir"),
    ("uppercase URL scheme", dataclasses.replace(HTTP, command="HTTP://example.com/"), "command", "http.url"),
]


def _request(job: Job) -> pb.RunRequest:
    from crontrio.common.convert import build_run_request
    from crontrio.common.model import RunRecord

    record = RunRecord(run_id="1-1000-1", job_id=1, job_name=job.name, scheduled_ms=1000, attempt=1, status="pending")
    return build_run_request(job, record)


@pytest.mark.parametrize(("case", "job", "api_field", "executor_field"), BAD, ids=[b[0] for b in BAD])
def test_api_and_executor_refuse_alike(case: str, job: Job, api_field: str, executor_field: str) -> None:
    with pytest.raises(ValidationError) as api:
        validate_job(job)
    assert api.value.field == api_field, case
    with pytest.raises(ValidationError) as executor:
        validate_request(_request(job))
    assert executor.value.field == executor_field, case


def test_trailing_newline_in_phone_is_refused() -> None:
    with pytest.raises(ValidationError) as err:
        validate_job(dataclasses.replace(SHELL, notify_phones=("+15550100\n",)))
    assert err.value.field == "notify_phones"


def test_limits_are_inclusive_and_good_jobs_pass_both() -> None:
    good = [
        dataclasses.replace(SHELL, command="x" * MAX_TEXT_BYTES, env={"A": "tab\tand newline\n ok"}, keywords=("a",) * 100),
        dataclasses.replace(HTTP, http_headers={"Authorization": "Bearer\tabc"}, http_body="b" * MAX_TEXT_BYTES),
    ]
    for job in good:
        validate_job(job)
        validate_request(_request(job))


def test_escape_controls_keeps_text_and_escapes_controls() -> None:
    assert escape_controls("café \x1b[31mred\x07\n\x9b") == "café \\x1b[31mred\\x07\\n\\x9b"
    escaper = OutputEscaper()
    # A UTF-8 character split across chunks survives; ESC and CR are shown; lines and tabs stay.
    text = escaper.feed(b"a\tb\n\xc3") + escaper.feed(b"\xa9\x1b]0;t\x07\r\n\xff", final=True)
    assert text == "a\tb\né\\x1b]0;t\\x07\\r\n\\xff"


def test_log_filter_keeps_a_record_on_one_line() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "run %s (%s)", ("1-1-1", "job\nFORGED line"), None)
    assert EscapeControlsFilter().filter(record)
    assert record.getMessage() == "run 1-1-1 (job\\nFORGED line)"
