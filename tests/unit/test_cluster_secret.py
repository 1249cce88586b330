"""Where the cluster secret comes from (common/cluster.py) and its config keys."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from crontrio.common.cluster import ClusterSecretError, resolve_secret
from crontrio.common.config import ClusterConfig, Config, load_config
from crontrio.common.errors import ConfigError


def test_configured_secret_wins_and_is_not_in_the_repr(tmp_path: Path) -> None:
    cfg = load_config(None, env={"CRONTRIO_CLUSTER_SECRET": "x" * 24, "CRONTRIO_CLUSTER_SECRET_FILE": str(tmp_path / "s")})
    assert resolve_secret(cfg.cluster, listen="0.0.0.0:5921", service="executor") == "x" * 24
    assert "x" * 24 not in repr(cfg) and "x" * 24 not in repr(cfg.cluster)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(("value", "message"), [("short", "at least 16"), ("has a space in it ok", "printable ASCII")])
def test_bad_configured_secret_is_refused_naming_the_key(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"cluster.secret: .*{message}") as err:
        load_config(None, env={"CRONTRIO_CLUSTER_SECRET": value})
    assert value not in str(err.value)


def test_loopback_creates_a_private_file_once_and_concurrent_starts_agree(tmp_path: Path) -> None:
    cluster = ClusterConfig(secret_file=str(tmp_path / "var" / "cluster.secret"))
    barrier = threading.Barrier(8)
    found: list[str] = []

    def start() -> None:
        barrier.wait()
        found.append(resolve_secret(cluster, listen="127.0.0.1:5921", service="executor"))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 8 and len(set(found)) == 1, found
    path = tmp_path / "var" / "cluster.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == found[0]
    assert os.listdir(path.parent) == ["cluster.secret"]  # no temporary files left
    # A later start reads it, also on a routable address (the file is the configuration).
    assert resolve_secret(cluster, listen="0.0.0.0:5921", service="executor") == found[0]


def test_routable_address_without_a_secret_refuses_naming_the_settings(tmp_path: Path) -> None:
    cluster = ClusterConfig(secret_file=str(tmp_path / "cluster.secret"))
    with pytest.raises(ClusterSecretError, match=r"cluster\.secret.*CRONTRIO_CLUSTER_SECRET.*\[tls\] internal") as err:
        resolve_secret(cluster, listen="0.0.0.0:5921", service="executor", mtls_hint=True)
    assert isinstance(err.value, OSError)  # printed as "cannot start: ..." by the services
    with pytest.raises(ClusterSecretError, match=r"10\.0\.0\.5:5920"):
        resolve_secret(cluster, listen="10.0.0.5:5920", service="dispatcher")
    assert not (tmp_path / "cluster.secret").exists()


def test_a_secret_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cluster.secret"
    path.write_text("y" * 32 + "\n")
    path.chmod(0o644)
    with pytest.raises(ClusterSecretError, match="chmod 600"):
        resolve_secret(ClusterConfig(secret_file=str(path)), listen="127.0.0.1:1", service="monitor")
    path.chmod(0o600)
    assert resolve_secret(ClusterConfig(secret_file=str(path)), listen="127.0.0.1:1", service="monitor") == "y" * 32


def test_inherit_env_refuses_service_variables() -> None:
    with pytest.raises(ConfigError, match=r"executor\.inherit_env: 'CRONTRIO_DATABASE_PASSWORD'"):
        load_config(None, env={"CRONTRIO_EXECUTOR_INHERIT_ENV": "LC_ALL, CRONTRIO_DATABASE_PASSWORD"})
    with pytest.raises(ConfigError, match=r"executor\.inherit_env: 'BAD-NAME'"):
        load_config(None, env={"CRONTRIO_EXECUTOR_INHERIT_ENV": "BAD-NAME"})
    cfg: Config = load_config(None, env={"CRONTRIO_EXECUTOR_INHERIT_ENV": "LC_ALL, http_proxy"})
    assert cfg.executor.inherit_env == ["LC_ALL", "http_proxy"]
