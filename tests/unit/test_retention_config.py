"""[store] retention keys and [executor] keep_unacked_days: parsed, typed, checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from crontrio.common.config import load_config
from crontrio.common.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


@pytest.mark.parametrize("name", ["conf.ini", "conf.distributed.ini"])
def test_shipped_confs_document_retention_with_the_defaults(name: str) -> None:
    cfg = load_config(CONF_DIR / name, env={})
    assert (cfg.store.keep_runs_days, cfg.store.keep_runs_per_job, cfg.store.keep_audit_days) == (30.0, 100, 180.0)
    assert cfg.executor.keep_unacked_days == 7.0
    text = (CONF_DIR / name).read_text()
    for key in ("keep_runs_days", "keep_runs_per_job", "keep_audit_days", "prune_batch_rows", "keep_unacked_days"):
        assert f"\n{key} = " in text


def test_values_and_env_overrides(tmp_path: Path) -> None:
    path = tmp_path / "conf.ini"
    path.write_text("[store]\nkeep_runs_days = 0.5\nkeep_runs_per_job = 3\nkeep_audit_days = 0\n")
    cfg = load_config(path, env={"CRONTRIO_STORE_PRUNE_BATCH_ROWS": "50", "CRONTRIO_EXECUTOR_KEEP_UNACKED_DAYS": "0"})
    assert (cfg.store.keep_runs_days, cfg.store.keep_runs_per_job, cfg.store.keep_audit_days) == (0.5, 3, 0.0)
    assert cfg.store.prune_batch_rows == 50 and cfg.executor.keep_unacked_days == 0.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[store]\nkeep_runs_days = -1\n", "store.keep_runs_days: must not be negative"),
        ("[store]\nkeep_audit_days = -2\n", "store.keep_audit_days: must not be negative"),
        ("[store]\nkeep_runs_per_job = 0\n", "store.keep_runs_per_job: must be at least 1"),
        ("[store]\nkeep_runs_per_job = many\n", "store.keep_runs_per_job: expected a whole number"),
        ("[store]\nprune_batch_rows = 0\n", "store.prune_batch_rows: must be at least 1"),
        ("[store]\nprune_interval_seconds = 0\n", "store.prune_interval_seconds: must be positive"),
        ("[store]\nprune_pause_seconds = -1\n", "store.prune_pause_seconds: must not be negative"),
        ("[store]\nkeep_days = 3\n", "store.keep_days: unknown key"),
        ("[executor]\nkeep_unacked_days = -1\n", "executor.keep_unacked_days: must not be negative"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "conf.ini"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert message in str(err.value)
