"""burst: N HTTP jobs all due at the same second (the top-of-the-minute burst
of an aligned crontab), loaded well before it. Does every request arrive, once,
and how late is the last one? What does each process spend per firing?

Every job's spec names one second (`S M H D Mon *`, 6 fields, seconds first,
UTC), `--lead` seconds after the jobs are written (once the executors
serve, just before the dispatchers start); the dispatchers must be serving
(every job loaded) at least 2 s before it, or the run fails. Each job
GETs /j/<i> on bench/httpsink.py (its own process). Reported:

* lag        = request arrival at the sink - due time (first request per job)
* duplicates = requests beyond one per job + started run rows beyond one per job
* misses     = jobs whose request never arrived
* extra.cpu_seconds_burst / cpu_ms_per_firing: each crontrio process's CPU
  (/proc/<pid>/stat) from 3 s before the due second until every run is
  recorded finished (or nothing moved for 5 s): the burst window
* extra.loadavg: /proc/loadavg before and after (other work on the machine
  makes the numbers noisy; say so next to them)

Modes: `embedded` (default: 1 dispatcher + --executors static executors,
SQLite, in-process claims) and `distributed` (private MariaDB, Redis and
etcd like the failover scenario; executors found in etcd; a monitor;
--dispatchers of them). `--kill-dispatcher` (distributed, 2 dispatchers):
`kill -9` the dispatcher that has claimed most of the burst --kill-before-ms
before the due second, once it holds the prepared firings.

Peers in the same invocation (unless --no-peers), one after the other, each
body one HTTP GET to a fresh sink (lag measured the same way):
APScheduler 3, MemoryJobStore, in-process, a CronTrigger naming the same
second (bench/peers/apscheduler_burst.py); Celery beat + RedBeat + one
worker, each entry RedBeat's rrule('SECONDLY', dtstart=<due>, count=1), i.e.
once at exactly that second, Celery's crontab having no seconds field
(bench/peers/celery_burst_app.py).

--profile DIR: py-spy (raw collapsed stacks, 100 Hz) on the dispatcher(s)
and executors over the burst window, with DIR/<mode>/<process>-top.txt: the
top 25 functions by own time, by package, and crontrio's functions inclusive.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pymysql

from bench.burst_common import (
    CPU_BEFORE_MS,
    MODES,
    READY_MARGIN_S,
    SCENARIO,
    SETTLE_IDLE_S,
    default_lead,
    loadavg,
    mysql_store,
    sink_lags,
    spec_for,
    sqlite_store,
    start_sink,
    wait_settled,
)
from bench.burst_peers import PEERS, run_peer
from bench.fire_lag import Profiler, insert_jobs, lag_histogram
from bench.harness import (
    Scenario,
    Service,
    cli,
    default_out_dir,
    distributed_conf,
    embedded_conf,
    free_port,
    make_result,
    migrate,
    proc_stats,
    scenario_cli,
    sleep_until_ms,
    summary_line,
    write_result,
)
from bench.profile_top import write_top_text
from testing_support.servers import EtcdServer, MariaDBServer, RedisServer


def run(
    mode: str = "embedded",
    jobs: int = 10_000,
    executors: int = 2,
    dispatchers: int = 1,
    lead: int | None = None,
    kill_dispatcher: bool = False,
    kill_before_ms: int = 300,
    out_dir: Path | None = None,
    keep: bool = False,
    log_level: str = "WARNING",
    profile_dir: Path | None = None,
) -> tuple[dict[str, Any], Path]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    if kill_dispatcher:
        if mode != "distributed":
            raise ValueError("--kill-dispatcher needs --mode distributed")
        dispatchers = max(dispatchers, 2)
    if mode == "embedded":
        dispatchers = 1  # in-process claims: one dispatcher by design
    out_dir = out_dir or default_out_dir()
    lead = lead if lead is not None else default_lead(jobs)
    params: dict[str, Any] = {
        "jobs": jobs,
        "mode": mode,
        "executors": executors,
        "dispatchers": dispatchers,
        "lead_seconds": lead,
        "kill_dispatcher": kill_dispatcher,
        "log_level": log_level,
    }
    variant = mode + ("-kill" if kill_dispatcher else "")
    if jobs > 10_000:
        # Its own file: `make bench` runs 100,000 after 10,000 into one --out.
        variant += f"-{jobs}"
    with Scenario(f"{SCENARIO}-{variant}", keep) as sc:
        sink, sink_port, sink_stats = start_sink(sc, "httpsink")
        ex_addrs = [f"127.0.0.1:{free_port()}" for _ in range(executors)]
        t_setup = time.time()
        backend_pids: dict[str, int] = {}

        def member_env(service: str, name: str, address: str) -> dict[str, str]:
            env = {f"CRONTRIO_{service.upper()}_LISTEN": address}
            if service in ("dispatcher", "executor"):
                env[f"CRONTRIO_{service.upper()}_ID"] = name
                env[f"CRONTRIO_{service.upper()}_METRICS_LISTEN"] = f"127.0.0.1:{free_port()}"  # on, as deployed
            if service == "executor":
                env["CRONTRIO_EXECUTOR_JOURNAL"] = str(sc.root / f"{name}-journal.db")
            return env

        if mode == "embedded":
            conf = embedded_conf(
                sc.root, f"127.0.0.1:{free_port()}", ex_addrs[0], log_level, {"dispatcher": {"executors": ",".join(ex_addrs)}}
            )
            migrate(conf)
            store = sqlite_store(sc.root / "crontrio.db")

            def insert(rows: list[tuple[Any, ...]]) -> float:
                return insert_jobs(sc.root / "crontrio.db", rows, "name, spec, type, command")

        else:
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
            for name, server in (("mariadb", mariadb), ("redis", redis), ("etcd", etcd)):
                if server.proc is not None:
                    backend_pids[name] = server.proc.pid
            conf = distributed_conf(sc.root, mariadb, redis, etcd, database, log_level)
            migrate(conf)
            store = mysql_store(mariadb.port, mariadb.user, mariadb.password, database)

            def insert(rows: list[tuple[Any, ...]]) -> float:
                t_ins = time.monotonic()
                conn = pymysql.connect(
                    host="127.0.0.1", port=mariadb.port, user=mariadb.user, password=mariadb.password, database=database
                )
                with conn.cursor() as cur:
                    cur.executemany("INSERT INTO jobs (name, spec, type, command) VALUES (%s, %s, %s, %s)", rows)
                conn.commit()
                conn.close()
                return time.monotonic() - t_ins

        # Users-last, so cleanup (newest first) stops dispatchers before executors.
        procs: dict[str, Service] = {}
        addresses: dict[str, str] = {}
        for i, addr in enumerate(ex_addrs):
            name = f"executor{i + 1}"
            procs[name] = sc.start(Service.crontrio("executor", conf, name=name, env=member_env("executor", name, addr)))
            addresses[name] = addr
        for name in procs:
            procs[name].wait_serving(addresses[name])
        # The jobs are written once the executors serve, so --lead covers
        # only what needs the jobs: writing them and the dispatchers' start.
        due_s = math.ceil(time.time()) + lead
        due_ms = due_s * 1000
        params["spec"] = spec = spec_for(due_s)
        insert_seconds = insert([(f"burst-{i:06d}", spec, "http", f"http://127.0.0.1:{sink_port}/j/{i}") for i in range(jobs)])
        t_spawn = time.time()
        for i in range(dispatchers):
            name = "dispatcher" if dispatchers == 1 else f"dispatcher{i + 1}"
            addr = f"127.0.0.1:{free_port()}"
            procs[name] = sc.start(Service.crontrio("dispatcher", conf, name=name, env=member_env("dispatcher", name, addr)))
            addresses[name] = addr
        if mode == "distributed":
            addr = f"127.0.0.1:{free_port()}"
            procs["monitor"] = sc.start(
                Service.crontrio("monitor", conf, name="monitor", env=member_env("monitor", "monitor", addr))
            )
            addresses["monitor"] = addr
        t_ready = max(procs[n].wait_serving(addresses[n], timeout=lead + 60) for n in procs if not n.startswith("executor"))
        if t_ready > due_s - READY_MARGIN_S:
            raise RuntimeError(
                f"the services served {t_ready - (due_s - lead):.1f} s after the jobs were written: raise --lead (was {lead})"
            )

        sleep_until_ms(due_ms - CPU_BEFORE_MS)
        before = {n: p.stats() for n, p in procs.items()} | {"httpsink": sink.stats()}
        backend_before = {n: proc_stats(pid) for n, pid in backend_pids.items()}
        load_before = loadavg()
        profiler = Profiler(profile_dir / variant, None, rate=100) if profile_dir else None
        if profiler:
            profiler.start({n: p.pid for n, p in procs.items() if n.startswith(("dispatcher", "executor"))})

        kill: dict[str, Any] = {}
        if kill_dispatcher:
            sleep_until_ms(due_ms - kill_before_ms)
            claimed = store.by_dispatcher(due_ms)
            ranked = sorted(
                (n for n in procs if n.startswith("dispatcher")),
                key=lambda n: -sum(c for d, c in claimed.items() if d.startswith(n)),
            )
            victim = ranked[0]
            procs[victim].stats()  # its last reading: none after the kill
            kill = {"victim": victim, "kill_ms": int(time.time() * 1000), "runs_by_dispatcher_at_kill": claimed}
            procs[victim].kill()

        settled = wait_settled(store, due_ms, jobs, limit_s=120 + jobs / 100)
        t_end = time.time()
        after = {n: p.stats() for n, p in procs.items()} | {"httpsink": sink.stats()}
        backend_after = {n: proc_stats(pid) for n, pid in backend_pids.items()}
        load_after = loadavg()
        if profiler:
            profiler.stop()
        profile = profiler.finish(25) if profiler else {}
        if profiler:
            for name in profile:
                raw = profile_dir / variant / f"{name}.txt"  # type: ignore[operator]
                write_top_text(raw, raw.with_name(f"{name}-top.txt"), f"burst {variant} {jobs} jobs: {name}")
        run_rows = store.rows(due_ms)
        problems = sc.log_problems()
        for name in reversed(list(procs)):
            procs[name].stop()
        sink.stop()
        lags, arrived, http_dups, requests = sink_lags(sink_stats, jobs, due_ms)

    started = Counter(int(r[0]) for r in run_rows if int(r[3] or 0) > 0)
    db_dups = sum(n - 1 for n in started.values())
    window_s = t_end - (due_ms - CPU_BEFORE_MS) / 1000
    cpu_burst = {
        n: round(a["cpu"] - b["cpu"], 2)
        for n in after
        if (a := after.get(n)) is not None and (b := before.get(n)) is not None and n != kill.get("victim")
    }
    extra: dict[str, Any] = {
        "due_ms": due_ms,
        "lag_measured_at": "the HTTP sink: first request per job - due time",
        "requests_total": requests,
        "duplicates_http": http_dups,
        "duplicates_db": db_dups,
        "runs_started_db": len(started),
        "run_rows": len(run_rows),
        "status_counts": dict(Counter(str(r[2]) for r in run_rows)),
        "runs_by_dispatcher": dict(Counter(str(r[5]) for r in run_rows)),
        "finished_when_settled": settled,
        "burst_window_s": round(window_s, 2),
        "burst_window_note": f"from {CPU_BEFORE_MS} ms before the due second until every run was recorded finished "
        f"(or nothing moved for {SETTLE_IDLE_S:g} s)",
        "cpu_seconds_burst": cpu_burst,
        "cpu_ms_per_firing": {n: round(1000 * c / arrived, 3) for n, c in cpu_burst.items()} if arrived else {},
        "backend_cpu_seconds_burst": {
            n: round(a["cpu"] - b["cpu"], 2)
            for n in backend_after
            if (a := backend_after.get(n)) is not None and (b := backend_before.get(n)) is not None
        },
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "jobs_insert_seconds": round(insert_seconds, 2),
        "setup_to_ready_s": round(t_ready - t_setup, 2),
        "dispatcher_start_to_serving_s": round(t_ready - t_spawn, 2),
        "ready_before_due_s": round(due_s - t_ready, 2),
        "lag_distribution_ms": lag_histogram(lags),
        "log_warnings_errors": problems,
    }
    if kill:
        kill["kill_before_due_ms"] = due_ms - kill["kill_ms"]
        extra["kill"] = kill
    if profile:
        extra["py_spy_top"] = profile
    final = {n: p.last_stats for n, p in procs.items()}
    result = make_result(
        SCENARIO,
        variant,
        params,
        sc.started_at,
        expected=jobs,
        run=arrived,
        duplicates=http_dups + db_dups,
        window_seconds=window_s,
        lags_ms=lags,
        stats=final,
        extra=extra,
    )
    path = write_result(out_dir, result)
    print(
        summary_line(result, path)
        + " | burst cpu ms/firing "
        + " ".join(f"{n} {v:g}" for n, v in extra["cpu_ms_per_firing"].items())
        + f" | load {load_before[0]:g}->{load_after[0]:g}",
        flush=True,
    )
    return result, path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=MODES, default="embedded", help="embedded (SQLite, default) or distributed")
    parser.add_argument("--jobs", type=int, default=10_000, help="HTTP jobs due at the same second (default 10000)")
    parser.add_argument("--executors", type=int, default=2, help="executor processes (default 2)")
    parser.add_argument("--dispatchers", type=int, default=1, help="dispatchers in distributed mode (default 1)")
    parser.add_argument("--lead", type=int, help="seconds from writing the jobs to their due second (default 10 + jobs/2500)")
    parser.add_argument(
        "--kill-dispatcher", action="store_true", help="distributed, 2 dispatchers: kill -9 the one holding most of the burst"
    )
    parser.add_argument("--kill-before-ms", type=int, default=300, help="how long before the due second to kill (default 300)")
    parser.add_argument(
        "--no-peers", action="store_true", help="only crontrio, not APScheduler's and Celery beat + RedBeat's burst after it"
    )
    parser.add_argument("--log-level", default="WARNING", help="[log] level of the services (default WARNING)")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="py-spy the dispatcher(s) and executors during the burst into DIR"
    )
    parser.add_argument("--out", type=Path, help="directory for the JSON (default bench/results/<UTC date>)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (conf, database, logs)")


def main_args(args: argparse.Namespace) -> int:
    run(
        args.mode,
        args.jobs,
        args.executors,
        args.dispatchers,
        args.lead,
        args.kill_dispatcher,
        args.kill_before_ms,
        args.out,
        args.keep,
        args.log_level,
        args.profile,
    )
    if not args.no_peers:
        for system in PEERS:
            run_peer(system, args.jobs, None, args.out, args.keep)
    return 0


@cli
def main(argv: list[str] | None = None) -> int:
    return scenario_cli("python -m bench.burst", __doc__, add_arguments, main_args, argv)


if __name__ == "__main__":
    raise SystemExit(main())
