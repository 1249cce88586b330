"""A distributed crontrio on one machine: N dispatchers, M executors and a
monitor as real processes, on a private MariaDB, Redis and etcd."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

from crontrio.common.config import DatabaseConfig
from testing_support.servers import EtcdServer, RedisServer
from testing_support.services import REPO, ServiceProcess, database_section, free_port, is_serving, wait_for, write_conf


def distributed_sections(db: DatabaseConfig, redis: RedisServer, etcd: EtcdServer, log_level: str) -> dict[str, dict[str, str]]:
    """conf.ini sections for distributed mode on a private MariaDB, Redis and
    etcd (testing_support/servers.py): executors found in etcd, a quick
    monitor. The tests' clusters and the benchmarks' both run on these."""
    return {
        "database": {**database_section(db), "auto_migrate": "false"},
        "redis": {"host": redis.host, "port": str(redis.port)},
        "etcd": {"endpoints": etcd.endpoint, "lease_ttl": "3"},
        "dispatcher": {"executors": "", "shutdown_grace_seconds": "5"},
        "executor": {"kill_grace_seconds": "1", "shutdown_grace_seconds": "5"},
        "monitor": {
            "poll_interval_seconds": "0.2",
            "health_interval_seconds": "0.5",
            "reconcile_interval_seconds": "0.5",
            "missed_after_seconds": "8",
            "http_listen": "",
        },
        "log": {"level": log_level},
    }


@dataclass
class Member:
    name: str
    service: str
    address: str
    env: dict[str, str]
    proc: ServiceProcess | None = None


@dataclass
class Cluster:
    root: Path
    db: DatabaseConfig
    redis: RedisServer
    etcd: EtcdServer
    conf: Path = field(init=False)
    members: dict[str, Member] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.conf = write_conf(self.root, distributed_sections(self.db, self.redis, self.etcd, "INFO"))
        subprocess.run(
            [sys.executable, "-m", "crontrio.monitor", "-c", str(self.conf), "migrate"], cwd=REPO, check=True, timeout=60
        )

    def add(self, service: str, name: str) -> Member:
        port = free_port()
        address = f"127.0.0.1:{port}"
        env = {f"CRONTRIO_{service.upper()}_LISTEN": address}
        if service in ("dispatcher", "executor"):
            env[f"CRONTRIO_{service.upper()}_ID"] = name
        if service == "executor":
            env["CRONTRIO_EXECUTOR_JOURNAL"] = str(self.root / f"{name}-journal.db")
        member = Member(name, service, address, env)
        self.members[name] = member
        return member

    def start(self, name: str) -> Member:
        member = self.members[name]
        member.proc = ServiceProcess(member.service, self.conf, self.root / f"{name}.log", env=member.env)
        proc = member.proc
        try:
            wait_for(lambda: proc.proc.poll() is None and is_serving(member.address), 30, f"{name} to serve")
        except AssertionError:
            raise AssertionError(f"{name} did not start:\n{proc.log_text()}") from None
        return member

    def kill(self, name: str) -> None:
        member = self.members[name]
        assert member.proc is not None
        member.proc.kill()

    def stop(self, name: str) -> int:
        member = self.members[name]
        assert member.proc is not None
        return member.proc.stop()

    def log(self, name: str) -> str:
        proc = self.members[name].proc
        return proc.log_text() if proc else ""

    def logs(self) -> str:
        return "\n".join(f"===== {n}\n{self.log(n)[-20000:]}" for n in self.members)

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        conn = pymysql.connect(
            host=self.db.host,
            port=self.db.port,
            user=self.db.username,
            password=self.db.password,
            database=self.db.database,
            autocommit=True,
        )
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return list(cur.fetchall())
        finally:
            conn.close()

    def shutdown(self) -> dict[str, int]:
        codes = {}
        # Users of a service stop before it: no run is routed to a stopping executor.
        order = {"monitor": 0, "dispatcher": 1, "executor": 2}
        for name, member in sorted(self.members.items(), key=lambda item: order[item[1].service]):
            if member.proc is not None and member.proc.proc.returncode is None:
                codes[name] = member.proc.stop()
        return codes
