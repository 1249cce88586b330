"""cronctl import crontab reads entries without CRON_TZ in this machine's
zone, as cron does: TZ first, then the system's setting, else UTC."""

from __future__ import annotations

import pytest

from crontrio.cronctl.import_cmd import local_timezone


@pytest.mark.parametrize(("tz", "zone"), [("Europe/Berlin", "Europe/Berlin"), (":America/New_York", "America/New_York")])
def test_tz_variable_wins(monkeypatch: pytest.MonkeyPatch, tz: str, zone: str) -> None:
    monkeypatch.setenv("TZ", tz)
    assert local_timezone() == zone


def test_an_unusable_tz_falls_back_to_a_valid_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Not/AZone")
    without = local_timezone()
    monkeypatch.delenv("TZ")
    assert without == local_timezone() != "Not/AZone"
