from __future__ import annotations

import random

from crontrio.common.model import HTTP, Job, RunRecord
from crontrio.dispatcher.firing import retry_delay
from crontrio.dispatcher.run_request import build_run_request, request_template


def job(**kw: object) -> Job:
    fields: dict[str, object] = {"name": "j", "spec": "* * * * *", "command": "true", **kw}
    return Job(**fields)  # type: ignore[arg-type]


def test_retry_delay_backs_off_and_caps() -> None:
    j = job(retry_interval_seconds=1.0, retry_backoff=2.0, retry_max_interval_seconds=5.0)
    rng = random.Random(1)
    assert [retry_delay(j, n, rng) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_retry_delay_jitter_stays_within_the_fraction() -> None:
    j = job(retry_interval_seconds=10.0, retry_jitter=0.2)
    rng = random.Random(7)
    delays = [retry_delay(j, 1, rng) for _ in range(200)]
    assert all(8.0 <= d <= 12.0 for d in delays)
    assert len({round(d, 3) for d in delays}) > 100  # actually spread, not a constant


def test_run_request_carries_every_task_option() -> None:
    record = RunRecord(
        run_id="3-1000-2.1", job_id=3, job_name="j", scheduled_ms=1000, attempt=2, status="pending", shard=1, shard_total=4
    )
    shell = build_run_request(
        job(
            id=3,
            workdir="/srv",
            env={"A": "1"},
            run_as_user="nobody",
            route_strategy="sharded",
            timeout_seconds=9,
            keywords=("ERR",),
        ),
        record,
    )
    assert (shell.run_id, shell.attempt, shell.timeout_seconds, list(shell.keywords)) == ("3-1000-2.1", 2, 9, ["ERR"])
    assert shell.shell.user == "nobody" and shell.shell.workdir == "/srv"
    assert dict(shell.shell.env) == {"A": "1", "CRONTRIO_SHARD_INDEX": "1", "CRONTRIO_SHARD_TOTAL": "4"}
    http = build_run_request(
        job(
            type=HTTP,
            command="https://x/y",
            http_method="POST",
            http_headers={"X": "1"},
            http_body="b",
            expected_statuses=(202,),
            follow_redirects=True,
            skip_tls_verify=True,
        ),
        record,
    )
    assert (http.http.url, http.http.method, dict(http.http.headers), http.http.body) == ("https://x/y", "POST", {"X": "1"}, "b")
    assert list(http.http.expected_statuses) == [202] and http.http.follow_redirects and http.http.skip_tls_verify


def test_request_from_a_template_equals_one_built_directly() -> None:
    j = job(id=5, type=HTTP, command="http://h/p", http_headers={"A": "b"}, keywords=("X",), timeout_seconds=3)
    template = request_template(j)
    assert template is not None
    for attempt, scheduled in ((1, 60_000), (2, 120_000)):
        record = RunRecord(
            run_id=f"5-{scheduled}-{attempt}", job_id=5, job_name="j", scheduled_ms=scheduled, attempt=attempt, status="pending"
        )
        assert build_run_request(j, record, template) == build_run_request(j, record)


def test_sharded_jobs_get_no_template_because_each_shard_env_differs() -> None:
    assert request_template(job(route_strategy="sharded")) is None
