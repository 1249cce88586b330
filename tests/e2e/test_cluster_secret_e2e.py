"""Embedded mode stays zero-config with the cluster credential on: the trio
shares the secret the first of them created, and jobs fire."""

from __future__ import annotations

import stat

import pytest

from testing_support.services import cluster_secret, wait_for
from testing_support.trio import Trio


def test_embedded_trio_fires_jobs_with_the_secret_it_created(trio: Trio, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRONTRIO_CLUSTER_SECRET", raising=False)  # only the file, as `make run` has it
    for service in ("executor", "dispatcher", "monitor"):
        trio.start(service)
    path = trio.root / "var" / "cluster.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = cluster_secret(trio.root)

    # Inserted by SQL: it fires only once the monitor's NotifyJobChanges (a
    # Control call, cluster secret required) got through; the dispatcher's
    # own fallback re-read is 30 s away.
    trio.sql("INSERT INTO jobs (name, spec, command) VALUES ('show-env', '* * * * * *', 'env')")

    def succeeded() -> list[tuple[object, ...]]:
        return trio.sql("SELECT output FROM runs WHERE job_name = 'show-env' AND status = 'succeeded'")

    rows = wait_for(succeeded, 15, "a run of the SQL-inserted job to succeed on the executor")
    output = bytes(rows[0][0]).decode() if isinstance(rows[0][0], bytes | memoryview) else str(rows[0][0])  # type: ignore[arg-type]
    assert "CRONTRIO_RUN_ID=" in output
    assert secret not in output and "CRONTRIO_CLUSTER" not in output
    logs = trio.logs()
    assert "refused /crontrio.v1." not in logs, logs
    assert secret not in logs
