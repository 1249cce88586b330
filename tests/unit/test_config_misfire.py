"""[dispatcher] misfire_grace_seconds and record_backlog: typed, defaulted, and
a bad value names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from crontrio.common.config import load_config
from crontrio.common.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf.ini"
    path.write_text(text)
    return path


def test_defaults_and_values(tmp_path: Path) -> None:
    assert (load_config(write(tmp_path, ""), env={}).dispatcher.misfire_grace_seconds) == 10.0
    cfg = load_config(write(tmp_path, "[dispatcher]\nmisfire_grace_seconds = 2.5\nrecord_backlog = 50\n"), env={})
    assert (cfg.dispatcher.misfire_grace_seconds, cfg.dispatcher.record_backlog) == (2.5, 50)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("misfire_grace_seconds = 0", "dispatcher.misfire_grace_seconds: must be a positive number"),
        ("misfire_grace_seconds = inf", "dispatcher.misfire_grace_seconds"),
        ("misfire_grace_seconds = nan", "dispatcher.misfire_grace_seconds"),
        ("record_backlog = 0", "dispatcher.record_backlog: must be at least 1"),
        ("record_backlog = many", "dispatcher.record_backlog: expected a whole number"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, f"[dispatcher]\n{text}\n"), env={})
    assert message in str(err.value)
