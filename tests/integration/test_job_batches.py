"""A full load converts rows column by column (common/store/job_batches.py):
the Jobs must be those row_to_job makes one row at a time, for ordinary rows
of every kind and for rows written by hand that it reports as defective."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sqlalchemy import select, text

from crontrio.common.config import DatabaseConfig
from crontrio.common.model import Dependency, Job
from crontrio.common.store import job_batches
from crontrio.common.store.engine import make_engine
from crontrio.common.store.job_batches import rows_to_jobs
from crontrio.common.store.migrate import ensure_schema
from crontrio.common.store.rows import row_to_job
from crontrio.common.store.schema import jobs as jobs_table
from crontrio.common.store.sql_store import SqlStore


def _store(tmp_path: Path) -> SqlStore:
    cfg = DatabaseConfig(driver="sqlite", path=str(tmp_path / "store.db"))
    engine = make_engine(cfg)
    ensure_schema(engine, cfg)
    return SqlStore(engine)


def _one_by_one(store: SqlStore) -> list[Job]:
    with store.engine.connect() as conn:
        return [row_to_job(r) for r in conn.execute(select(jobs_table).order_by(jobs_table.c.id)).mappings()]


def _batched(store: SqlStore) -> list[Job]:
    with store.engine.connect() as conn:
        result = conn.execute(select(jobs_table).order_by(jobs_table.c.id))
        return rows_to_jobs(tuple(result.keys()), result.fetchall())


VARIED = Job(
    name="varied",
    spec="H H * * MON-FRI",
    command="https://example.com/hook",
    timezone="Asia/Kolkata",
    type="http",
    http_method="POST",
    http_headers={"X-Trace": "1", "Accept": "text/plain"},
    http_body='{"a": 1}',
    expected_statuses=(200, 204),
    timeout_seconds=2.5,
    timeout_action="alert",
    retries=3,
    retry_interval_seconds=1.0,
    enabled=False,
    target="host-1",
    workdir="/srv",
    env={"MODE": "x"},
    overlap_policy="skip",
    misfire_policy="run_once",
    catch_up_window_seconds=60.0,
    retry_backoff=2.0,
    retry_max_interval_seconds=30.0,
    retry_jitter=0.5,
    route_strategy="random",
    run_as_user="",
    follow_redirects=True,
    skip_tls_verify=True,
    keywords=("ERROR", "FATAL"),
    keyword_action="notify",
    after=(Dependency("plain", "always"),),
    notify_policy="on_failure",
    notify_channels=("email",),
    notify_emails=("ops@example.com",),
    notify_phones=("+15551234567",),
    description="a job with\nevery field set",
    owner="team-ops",
    tags=("nightly", "db"),
)


def test_ordinary_rows_make_the_same_jobs_as_row_by_row(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.create_job(Job(name="plain", spec="0 12 * * *", command="true"))
    store.create_job(VARIED)
    for i in range(20):  # shared values, as in a fleet
        store.create_job(Job(name=f"tick-{i}", spec=f"{i} * * * *", command="echo hi", timezone="Europe/Berlin"))
    batched = _batched(store)
    assert batched == _one_by_one(store) == store.list_jobs()
    assert len(batched) == 22 and not any(j.defect for j in batched)
    varied = next(j for j in batched if j.name == "varied")
    assert dataclasses.replace(varied, id=0, created_ms=0, updated_ms=0) == VARIED
    # Ordinary rows take the column path itself, not the row-by-row fallback.
    with store.engine.connect() as conn:
        result = conn.execute(select(jobs_table).order_by(jobs_table.c.id))
        keys, rows = tuple(result.keys()), result.fetchall()
    assert job_batches._by_columns(dict(zip(keys, zip(*rows, strict=True), strict=True))) == batched
    # Each job its own dicts, never one shared between jobs.
    assert len({id(j.http_headers) for j in batched}) == len(batched)
    assert len({id(j.env) for j in batched}) == len(batched)


def test_rows_written_by_hand_are_reported_as_row_by_row_does(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.create_job(Job(name="good", spec="* * * * *", command="true"))
    with store.engine.begin() as conn:
        for statement in (
            "INSERT INTO jobs (name, spec, command, retries) VALUES ('three', '* * * * *', 'true', 'three')",
            "INSERT INTO jobs (name, spec, command, timeout_seconds) VALUES ('slow', '* * * * *', 'true', 'slow')",
            "INSERT INTO jobs (name, spec, command, keywords) VALUES ('badjson', '* * * * *', 'true', '[1,')",
            "INSERT INTO jobs (name, spec, command, http_headers) VALUES ('list', '* * * * *', 'true', '[]')",
            "INSERT INTO jobs (name, spec, command, retries, timeout_seconds) VALUES ('nums', '* * * * *', 'true', 2.0, 7)",
            "INSERT INTO jobs (name, spec, command, timezone) VALUES ('nozone', '* * * * *', 'true', '')",
            "INSERT INTO jobs (name, spec, command, description) VALUES ('numtext', '* * * * *', 'true', 12)",
        ):
            conn.execute(text(statement))
    store.create_job(Job(name="good-after", spec="* * * * *", command="true"))
    batched = _batched(store)
    assert batched == _one_by_one(store) == store.list_jobs()
    by_name = {j.name: j for j in batched}
    assert by_name["three"].defect and by_name["slow"].defect and by_name["badjson"].defect and by_name["list"].defect
    assert not by_name["good"].defect and not by_name["good-after"].defect
    assert (by_name["nums"].retries, by_name["nums"].timeout_seconds) == (2, 7.0)
    assert by_name["nozone"].timezone == "UTC" and by_name["numtext"].description == "12"


def test_an_empty_batch_is_no_jobs() -> None:
    assert rows_to_jobs(("id",), []) == []
