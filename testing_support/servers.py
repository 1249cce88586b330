"""Private MariaDB, Redis, etcd and Prometheus servers for tests: real processes from the
Debian packages, on free ports, in temp dirs, always stopped.

They never touch a server the machine may already run on the standard ports.
A missing binary is a test failure that names the package (`make test`
installs them when it runs as root), never a silent skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

from crontrio.common.config import DatabaseConfig
from testing_support.services import free_port, wait_for


def _binary(name: str, package: str, extra_paths: tuple[str, ...] = ()) -> str:
    found = shutil.which(name) or next((p for p in extra_paths if os.access(p, os.X_OK)), None)
    if found is None:
        raise AssertionError(f"{name} not found: install the Debian package {package} (`make test` does so as root)")
    return found


class _Process:
    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir = workdir
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{name}.log"

    def _spawn(self, argv: list[str]) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True)
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class RedisServer(_Process):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, "redis")
        self.port = free_port()
        self.binary = _binary("redis-server", "redis-server")

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def start(self) -> RedisServer:
        self._spawn(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--protected-mode",
                "no",
            ]
        )
        wait_for(self._ping, 15, f"redis on port {self.port}")
        return self

    def _ping(self) -> bool:
        import redis

        if not self.alive():
            raise AssertionError(f"redis-server exited:\n{self.log()}")
        return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping())


class EtcdServer(_Process):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, "etcd")
        self.port = free_port()
        self.peer_port = free_port()
        self.binary = _binary("etcd", "etcd-server", ("/usr/bin/etcd",))

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EtcdServer:
        client = f"http://127.0.0.1:{self.port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        self._spawn(
            [
                self.binary,
                "--name",
                "test",
                "--data-dir",
                str(self.workdir / "etcd-data"),
                "--listen-client-urls",
                client,
                "--advertise-client-urls",
                client,
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
                "--initial-cluster",
                f"test={peer}",
                "--log-level",
                "warn",
            ]
        )
        wait_for(self._healthy, 20, f"etcd on port {self.port}")
        return self

    def _healthy(self) -> bool:
        import urllib.request

        if not self.alive():
            raise AssertionError(f"etcd exited:\n{self.log()}")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as reply:
            return b"true" in reply.read()


class PrometheusServer(_Process):
    """A Prometheus that scrapes `scrape_configs` every `interval` (a
    generated prometheus.yml in its workdir) and answers queries over its
    HTTP API (`query`)."""

    def __init__(self, workdir: Path, scrape_configs: list[dict[str, object]], interval: str = "1s") -> None:
        super().__init__(workdir, "prometheus")
        self.port = free_port()
        self.binary = _binary("prometheus", "prometheus")
        self.scrape_configs = scrape_configs
        self.interval = interval

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        import json

        # JSON is YAML: no YAML library needed to write the config.
        config = {"global": {"scrape_interval": self.interval, "evaluation_interval": self.interval}}
        config["scrape_configs"] = self.scrape_configs  # type: ignore[assignment]
        (self.workdir / "prometheus.yml").write_text(json.dumps(config, indent=2))
        self._spawn(
            [
                self.binary,
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ]
        )
        wait_for(self._ready, 30, f"prometheus on port {self.port}")
        return self

    def _ready(self) -> bool:
        import urllib.request

        if not self.alive():
            raise AssertionError(f"prometheus exited:\n{self.log()}")
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as reply:
            return reply.status == 200

    def query(self, promql: str) -> list[dict[str, object]]:
        """The instant vector `promql` evaluates to now: [{"metric": {...}, "value": [t, "v"]}, ...]."""
        import json
        import urllib.parse
        import urllib.request

        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=5) as reply:
            body = json.loads(reply.read())
        if body.get("status") != "success":
            raise AssertionError(f"query {promql!r} failed: {body}")
        return list(body["data"]["result"])

    def targets(self) -> list[dict[str, object]]:
        """The active scrape targets with their health and last error."""
        import json
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=5) as reply:
            return list(json.loads(reply.read())["data"]["activeTargets"])


class MariaDBServer(_Process):
    """One server per test session (worker); each test gets a database of its own."""

    user = "crontrio"
    password = "crontrio-test"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, "mariadb")
        self.port = free_port()
        self.binary = _binary("mariadbd", "mariadb-server", ("/usr/sbin/mariadbd",))
        self.install = _binary("mariadb-install-db", "mariadb-server")
        self.datadir = workdir / "data"

    def start(self) -> MariaDBServer:
        if not self.datadir.exists():
            subprocess.run(
                [
                    self.install,
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    "--user=root" if os.getuid() == 0 else "",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        argv = [
            self.binary,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.workdir / 'mysqld.sock'}",
            f"--pid-file={self.workdir / 'mysqld.pid'}",
            "--skip-log-bin",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=2",
            "--max-connections=500",
        ]
        if os.getuid() == 0:
            argv.append("--user=root")
        self._spawn(argv)
        wait_for(self._ready, 60, f"mariadb on port {self.port}", interval=0.2)
        with self._root() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE USER IF NOT EXISTS '{self.user}'@'%' IDENTIFIED BY '{self.password}'")
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'%'")
        return self

    def _root(self):  # type: ignore[no-untyped-def]
        import pymysql

        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="", connect_timeout=2, autocommit=True)

    def _ready(self) -> bool:
        if not self.alive():
            raise AssertionError(f"mariadbd exited:\n{self.log()}")
        with self._root() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            return True

    def create_database(self) -> str:
        name = f"crontrio_{uuid.uuid4().hex[:12]}"
        with self._root() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        return name

    def database_config(self, name: str) -> DatabaseConfig:
        """How crontrio reaches database ``name`` on this server (a [database] section)."""
        return DatabaseConfig(
            driver="mysql", host="127.0.0.1", port=self.port, username=self.user, password=self.password, database=name
        )

    def drop_database(self, name: str) -> None:
        with self._root() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
