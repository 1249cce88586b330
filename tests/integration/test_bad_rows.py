"""Rows written by hand with plain SQL that cannot be read: each is listed
with the reason, and every other job still loads (SQLite and MariaDB).

SQLite stores whatever it is given (text in an INTEGER column, bytes that are
not UTF-8); MariaDB in strict mode refuses those, but stores JSON nested
deeper than any parser goes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from crontrio.common.config import DatabaseConfig
from crontrio.common.errors import ValidationError
from crontrio.common.jobs import validate_job
from crontrio.common.model import Job
from crontrio.common.store.engine import make_engine
from crontrio.common.store.migrate import ensure_schema
from crontrio.common.store.sql_store import SqlStore

DEEP_JSON = "[" * 50_000  # fits a TEXT column; json.loads raises RecursionError


def _sql(store: SqlStore, statement: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement))


def _reason(job: Job) -> str:
    with pytest.raises(ValidationError) as err:
        validate_job(job)
    return str(err.value)


def test_deep_json_row_is_listed_as_invalid_and_the_others_load(store: SqlStore) -> None:
    store.create_job(Job(name="good-before", spec="* * * * *", command="true"))
    _sql(store, f"INSERT INTO jobs (name, spec, command, keywords) VALUES ('deep', '* * * * *', 'true', '{DEEP_JSON}')")
    store.create_job(Job(name="good-after", spec="* * * * *", command="true"))
    jobs = {j.name: j for j in store.list_jobs()}
    assert set(jobs) == {"good-before", "deep", "good-after"}
    assert jobs["deep"].defect and "keywords" not in jobs["good-after"].defect
    assert "recursion" in _reason(jobs["deep"])
    assert store.get_job(name="deep") == jobs["deep"]
    assert [j.name for j in store.jobs_by_ids({j.id for j in jobs.values()})] == ["good-before", "deep", "good-after"]


def test_sqlite_text_in_an_integer_column_and_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    cfg = DatabaseConfig(driver="sqlite", path=str(tmp_path / "store.db"))
    engine = make_engine(cfg)
    ensure_schema(engine, cfg)
    store = SqlStore(engine)
    try:
        store.create_job(Job(name="good", spec="* * * * *", command="true"))
        _sql(store, "INSERT INTO jobs (name, spec, command, retries) VALUES ('three', '* * * * *', 'true', 'three')")
        _sql(store, "INSERT INTO jobs (name, spec, command) VALUES (CAST(X'6261640aff' AS TEXT), '* * * * *', 'true')")
        _sql(store, "INSERT INTO jobs (name, spec, command) VALUES (X'626c6f62ff', '* * * * *', 'true')")
        _sql(store, "INSERT INTO jobs (name, spec, command, timeout_seconds) VALUES ('slow', '* * * * *', 'true', 'slow')")
        jobs = store.list_jobs()
        assert [j.id for j in jobs] == [1, 2, 3, 4, 5]
        good, three, undecodable, blob, slow = jobs
        assert good.name == "good" and not good.defect
        assert "retries: expected an integer, got 'three'" in _reason(three)
        assert undecodable.name == "bad\n\ufffd" and "name: stored text is not valid UTF-8" in _reason(undecodable)
        assert "name: binary data" in _reason(blob)
        assert "timeout_seconds: expected a number" in _reason(slow)
        # One at a time too, and by id (the name of such a row cannot be typed).
        assert store.get_job(job_id=undecodable.id) == undecodable
        assert store.jobs_by_ids({three.id, undecodable.id}) == [three, undecodable]
        # A bad row can still be paused.
        paused = store.set_enabled(undecodable.id, False)
        assert paused is not None and not paused.enabled and paused.defect
    finally:
        store.close()
