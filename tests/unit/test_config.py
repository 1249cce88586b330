from __future__ import annotations

from pathlib import Path

import pytest

from crontrio.common.config import load_config
from crontrio.common.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf.ini"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, env={})
    assert cfg.database.driver == "sqlite"
    assert cfg.dispatcher.listen == "127.0.0.1:5920"
    assert cfg.executor.listen == "127.0.0.1:5921"
    assert cfg.monitor.listen == "127.0.0.1:5922"
    assert cfg.dispatcher.executors == ["127.0.0.1:5921"]
    assert cfg.executor.output_limit_bytes == 65536
    assert cfg.monitor_dispatchers == ["127.0.0.1:5920"]


def test_shipped_conf_ini_loads() -> None:
    cfg = load_config(Path(__file__).resolve().parents[2] / "conf" / "conf.ini", env={})
    assert cfg.database.path == "var/crontrio.db"
    assert cfg.redis.host == ""
    assert cfg.etcd.endpoints == []


def test_values_are_typed_and_inline_comments_stripped(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            "[database]\nport = 3307 ; comment\nauto_migrate = no\n"
            "[dispatcher]\nexecutors = 10.0.0.1:5921, 10.0.0.2:5921\n"
            "[machine]\nphpgroup = 192.168.2.74|192.168.2.75\n"
            "[executor]\nkill_grace_seconds = 2.5\n",
        ),
        env={},
    )
    assert cfg.database.port == 3307
    assert cfg.database.auto_migrate is False
    assert cfg.dispatcher.executors == ["10.0.0.1:5921", "10.0.0.2:5921"]
    assert cfg.machine == {"phpgroup": ["192.168.2.74", "192.168.2.75"]}
    assert cfg.executor.kill_grace_seconds == 2.5


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[database]\nhost = db1\n")
    cfg = load_config(
        path, env={"CRONTRIO_DATABASE_HOST": "db2", "CRONTRIO_EXECUTOR_GROUP": "php", "CRONTRIO_MACHINE_WEB": "a|b"}
    )
    assert cfg.database.host == "db2"
    assert cfg.executor.group == "php"
    assert cfg.machine["web"] == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[database]\nhots = x\n", {}, "database.hots: unknown key"),
        ("[databse]\nhost = x\n", {}, "[databse]: unknown section"),
        ("[database]\nport = abc\n", {}, "database.port: expected a whole number"),
        ("[database]\nauto_migrate = maybe\n", {}, "database.auto_migrate: expected true or false"),
        ("[database]\ndriver = postgres\n", {}, "database.driver"),
        ("[dispatcher]\nlisten = nohost\n", {}, "dispatcher.listen: expected host:port"),
        ("[dispatcher]\nexecutors = a:1, b\n", {}, "dispatcher.executors[1]"),
        ("[executor]\noutput_limit_bytes = 10\n", {}, "executor.output_limit_bytes"),
        ("[etcd]\nlease_ttl = 1\n", {}, "etcd.lease_ttl"),
        ("[log]\nlevel = LOUD\n", {}, "log.level"),
        ("[dispatcher]\ndispatch_ahead_ms = 60000\n", {}, "dispatcher.dispatch_ahead_ms: expected 0 to 10000, got 60000"),
        ("[dispatcher]\nmax_firings_ahead = 0\n", {}, "dispatcher.max_firings_ahead: expected 1 to 1000000, got 0"),
        ("", {"CRONTRIO_DATABASE_PORT": "x"}, "database.port: expected a whole number, got 'x' (from CRONTRIO_DATABASE_PORT)"),
    ],
)
def test_bad_config_names_section_and_key(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), env=env)
    assert message in str(err.value)


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.ini", env={})


def test_mysql_url_escapes_password() -> None:
    from crontrio.common.config import DatabaseConfig

    url = DatabaseConfig(driver="mysql", password="p@ss:w/rd", host="db", port=3307).url()
    assert url.startswith("mysql+pymysql://crontrio:p%40ss%3Aw%2Frd@db:3307/crontrio")
    assert "charset=utf8mb4" in url
