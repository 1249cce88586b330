"""failover: distributed mode, one of two dispatchers is `kill -9`ed mid-run.

Private MariaDB, Redis and etcd (testing_support/servers.py) in a temp dir; 2
dispatchers, 1 executor and the monitor as processes; N jobs every second
(`true`) for S seconds. At a random moment in the middle third of the window
(0-200 ms after a whole second, while that second's firings are in flight)
one dispatcher (chosen at random too; --seed makes both repeatable) gets
SIGKILL. The survivor must keep claiming, take over what the dead one had
claimed but not recorded, and the monitor must settle what it left running.

Reported over the window: misses, duplicates (started runs beyond one per
firing). lag_ms covers the firings from the second the kill landed in
onwards (those in flight in the dead dispatcher, then the survivor alone);
extra has the lag before that, over the whole window, and the longest lag
after the kill.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pymysql

from bench.harness import (
    Scenario,
    Service,
    cli,
    default_out_dir,
    distributed_conf,
    free_port,
    make_result,
    migrate,
    percentiles,
    proc_stats,
    scenario_cli,
    sleep_until_ms,
    summary_line,
    write_result,
)
from testing_support.servers import EtcdServer, MariaDBServer, RedisServer

SCENARIO = "failover"


class Db:
    def __init__(self, port: int, user: str, password: str, database: str) -> None:
        self.port, self.user, self.password, self.database = port, user, password, database

    def sql(self, statement: str, params: Any = None, many: bool = False) -> list[tuple[Any, ...]]:
        conn = pymysql.connect(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password, database=self.database, autocommit=True
        )
        try:
            with conn.cursor() as cur:
                if many:
                    cur.executemany(statement, params)
                    return []
                cur.execute(statement, params)
                return list(cur.fetchall())
        finally:
            conn.close()


def run(
    jobs: int = 200,
    seconds: int = 40,
    warmup: int = 3,
    seed: int | None = None,
    out_dir: Path | None = None,
    keep: bool = False,
    log_level: str = "WARNING",
) -> tuple[dict[str, Any], Path]:
    out_dir = out_dir or default_out_dir()
    seed = seed if seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    params: dict[str, Any] = {
        "jobs": jobs,
        "seconds": seconds,
        "warmup_seconds": warmup,
        "dispatchers": 2,
        "executors": 1,
        "seed": seed,
        "log_level": log_level,
    }
    with Scenario(SCENARIO, keep) as sc:
        t_setup = time.time()
        mariadb = MariaDBServer(sc.root / "mariadb-data-dir")
        mariadb.workdir.mkdir()
        sc.on_exit(mariadb.stop)
        mariadb.start()
        database = mariadb.create_database()
        redis = RedisServer(sc.root)
        sc.on_exit(redis.stop)
        redis.start()
        etcd = EtcdServer(sc.root)
        sc.on_exit(etcd.stop)
        etcd.start()
        backends_ready_s = time.time() - t_setup
        conf = distributed_conf(sc.root, mariadb, redis, etcd, database, log_level)
        migrate(conf)
        db = Db(mariadb.port, mariadb.user, mariadb.password, database)
        db.sql(
            "INSERT INTO jobs (name, spec, command) VALUES (%s, %s, %s)",
            [(f"bench-{i:04d}", "* * * * * *", "true") for i in range(jobs)],
            many=True,
        )

        def member(service: str, name: str) -> tuple[Service, str]:
            address = f"127.0.0.1:{free_port()}"
            env = {f"CRONTRIO_{service.upper()}_LISTEN": address}
            if service in ("dispatcher", "executor"):
                env[f"CRONTRIO_{service.upper()}_ID"] = name
                env[f"CRONTRIO_{service.upper()}_METRICS_LISTEN"] = f"127.0.0.1:{free_port()}"  # on, as deployed
            if service == "executor":
                env["CRONTRIO_EXECUTOR_JOURNAL"] = str(sc.root / f"{name}-journal.db")
            return sc.start(Service.crontrio(service, conf, name=name, env=env)), address

        # Started users-last, so cleanup (newest first) stops the monitor and
        # dispatchers before the executor, and the servers last of all.
        e1, e1_addr = member("executor", "e1")
        e1.wait_serving(e1_addr)
        started = {}
        for name in ("d1", "d2"):
            started[name] = member("dispatcher", name)
        m, m_addr = member("monitor", "monitor")
        t_ready = max(svc.wait_serving(addr, timeout=120) for svc, addr in [*started.values(), (m, m_addr)])
        d1, d2 = started["d1"][0], started["d2"][0]

        start_ms = (math.ceil(t_ready) + warmup) * 1000
        end_ms = start_ms + seconds * 1000
        victim_name = rng.choice(["d1", "d2"])
        victim = d1 if victim_name == "d1" else d2
        # A whole second in the middle third, then 0-200 ms into it: while that
        # second's firings are being claimed, recorded and sent, so the kill
        # leaves work in flight for the survivor and the monitor to recover.
        kill_at_ms = start_ms + 1000 * rng.randint(seconds // 3, max(seconds // 3, 2 * seconds // 3 - 1)) + rng.randrange(200)
        sleep_until_ms(kill_at_ms)
        victim.stats()  # its last reading: it cannot be read after the kill
        kill_ms = int(time.time() * 1000)
        victim.kill()
        sleep_until_ms(end_ms)

        # Settle: the monitor collects what the dead dispatcher left running.
        def active_and_started() -> tuple[int, int]:
            active, started_n = db.sql(
                "SELECT SUM(status IN ('pending', 'running')), SUM(started_ms > 0) FROM runs "
                "WHERE scheduled_ms >= %s AND scheduled_ms < %s",
                (start_ms, end_ms),
            )[0]
            return int(active or 0), int(started_n or 0)

        deadline, last, stable_since = time.monotonic() + 60, (-1, -1), time.monotonic()
        while time.monotonic() < deadline:
            now_state = active_and_started()
            if now_state[0] == 0 and now_state[1] >= jobs * seconds:
                break
            if now_state != last:
                last, stable_since = now_state, time.monotonic()
            elif now_state[0] == 0 and time.monotonic() - stable_since > 5:
                break
            time.sleep(0.5)
        settle_ms = int(time.time() * 1000) - end_ms
        final: dict[str, dict[str, float] | None] = {
            "dispatcher_d1": d1.stats(),
            "dispatcher_d2": d2.stats(),
            "executor": e1.stats(),
            "monitor": m.stats(),
        }
        backend_cpu = {
            name: round(s["cpu"], 2)
            for name, server in (("mariadb", mariadb), ("redis", redis), ("etcd", etcd))
            if server.proc is not None and (s := proc_stats(server.proc.pid)) is not None
        }
        problems = sc.log_problems()
        collected = m.log_text().count("is gone; collected the result")
        rows = db.sql(
            "SELECT job_id, scheduled_ms, attempt, status, started_ms, dispatcher, error FROM runs "
            "WHERE scheduled_ms >= %s AND scheduled_ms < %s",
            (start_ms, end_ms),
        )

    first: dict[tuple[int, int], int] = {}
    started_rows = 0
    for job_id, sched, _attempt, _status, started_ms, _disp, _err in rows:
        if started_ms > 0:
            started_rows += 1
            key = (int(job_id), int(sched))
            first[key] = min(int(started_ms), first.get(key, int(started_ms)))
    # "After the kill" starts with the second the kill landed in: its firings
    # were in flight in the dead dispatcher, and they are what is recovered.
    kill_second_ms = kill_ms // 1000 * 1000
    lag_after = [st - s for (_j, s), st in first.items() if s >= kill_second_ms]
    lag_before = [st - s for (_j, s), st in first.items() if s < kill_second_ms]
    expected_after = jobs * len(range(kill_second_ms, end_ms, 1000))
    by_dispatcher_after = Counter(str(d).split("@")[0] for _j, s, _a, _st, _sm, d, _e in rows if s >= kill_second_ms)
    errors = Counter(str(e)[:100] for *_x, e in rows if e)
    extra: dict[str, Any] = {
        "window_ms": [start_ms, end_ms],
        "killed": victim_name,
        "kill_ms": kill_ms,
        "kill_at_s_into_window": round((kill_ms - start_ms) / 1000, 2),
        "longest_lag_after_kill_ms": max(lag_after, default=None),
        "lag_after_kill_ms": percentiles(lag_after),
        "lag_before_kill_ms": percentiles(lag_before),
        "lag_all_ms": percentiles([*lag_before, *lag_after]),
        "firings_after_kill_expected": expected_after,
        "firings_after_kill_run": len(lag_after),
        "firings_after_kill_lag_over_400ms": sum(1 for x in lag_after if x > 400),
        "runs_after_kill_by_dispatcher": dict(by_dispatcher_after),
        "status_counts": dict(Counter(r[3] for r in rows)),
        "errors": dict(errors.most_common(5)),
        "monitor_collected_results": collected,
        "settle_after_window_ms": settle_ms,
        "backends_ready_s": round(backends_ready_s, 1),
        "backend_cpu_seconds": backend_cpu,
        "victim_stats_note": "the killed dispatcher's CPU and peak RSS are read just before the kill",
        "lag_ms_scope": "lag_ms covers the firings scheduled from the second the kill landed in (in flight then) onwards",
        "log_warnings_errors": problems,
    }
    result = make_result(
        SCENARIO,
        "",
        params,
        sc.started_at,
        expected=jobs * seconds,
        run=len(first),
        duplicates=started_rows - len(first),
        window_seconds=seconds,
        lags_ms=lag_after,
        stats=final,
        extra=extra,
    )
    path = write_result(out_dir, result)
    print(
        summary_line(result, path) + f" | killed {victim_name} at +{extra['kill_at_s_into_window']}s, "
        f"longest lag after {extra['longest_lag_after_kill_ms']} ms",
        flush=True,
    )
    return result, path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=200, help="jobs, each '* * * * * *' (default 200)")
    parser.add_argument("--seconds", type=int, default=40, help="measured window in seconds (default 40)")
    parser.add_argument("--warmup", type=int, default=3, help="whole seconds skipped after everything serves (default 3)")
    parser.add_argument("--seed", type=int, help="seed for which dispatcher dies and when (default: random, recorded)")
    parser.add_argument("--log-level", default="WARNING", help="[log] level of the services (default WARNING)")
    parser.add_argument("--out", type=Path, help="directory for the JSON (default bench/results/<UTC date>)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (servers' data, conf, logs)")


def main_args(args: argparse.Namespace) -> int:
    run(args.jobs, args.seconds, args.warmup, args.seed, args.out, args.keep, args.log_level)
    return 0


@cli
def main(argv: list[str] | None = None) -> int:
    return scenario_cli("python -m bench.failover", __doc__, add_arguments, main_args, argv)


if __name__ == "__main__":
    sys.exit(main())
