"""console_pages: web console page and JSON API times on a large history.

    python -m bench.run console_pages [--jobs 100000] [--runs 1000000] [--requests 30] [--databases sqlite,mariadb]

Bulk-loads --jobs jobs and --runs runs over 30 days (bench/console_data.py)
into a fresh SQLite file and into a private MariaDB, starts the real
dispatcher, one executor and the monitor (which serves the console) on that
store, logs in as the initial admin (through the login form for the pages, a
bearer token for the API) and times each page: --warmup requests first, then
--requests sequential requests, each one fetched in full (status 200 and the
whole body). Pages that name a job or a run rotate over a sample of them.
The target is p95 under 300 ms per page at 100,000 jobs and 1,000,000 runs.

Writes one result per database (bench/SCHEMA.md: firings_* count requests,
lag_ms is over every timed request; extra.pages has p50/p95/max per page).
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench import console_data
from bench.harness import (
    Scenario,
    Service,
    free_port,
    make_result,
    migrate,
    percentiles,
    scenario_cli,
    wait_for,
    write_conf,
    write_result,
)
from crontrio.common.config import DatabaseConfig
from crontrio.common.store.engine import make_engine
from crontrio.dispatcher import paging
from testing_support.services import database_section

TARGET_P95_MS = 300.0
GIVE_UP = 2
Page = tuple[str, Callable[[int], str]]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=1_000_000)
    p.add_argument("--requests", type=int, default=30, help="timed requests per page")
    p.add_argument("--warmup", type=int, default=3, help="untimed requests per page first")
    p.add_argument("--databases", default="sqlite,mariadb", help="comma-separated: sqlite, mariadb")
    p.add_argument("--out", type=Path, help="directory for the JSON files")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (data, logs)")
    p.add_argument("--log-level", default="WARNING")


def main_args(args: argparse.Namespace) -> int:
    from bench.harness import default_out_dir

    out = args.out or default_out_dir()
    for database in [d.strip() for d in args.databases.split(",") if d.strip()]:
        run(database, jobs=args.jobs, runs=args.runs, requests=args.requests, warmup=args.warmup, out_dir=out,
            keep=args.keep, log_level=args.log_level)  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    return scenario_cli("python -m bench.console_pages", __doc__, add_arguments, main_args, argv)


def _mariadb(sc: Scenario) -> DatabaseConfig:
    from testing_support.servers import MariaDBServer  # the tests' way to start a private one on a free port

    server = MariaDBServer(sc.root / "mariadb")
    server.workdir.mkdir(parents=True, exist_ok=True)
    server.start()
    sc.on_exit(server.stop)
    with server._root() as conn, conn.cursor() as cur:
        # The tests' 64 MB buffer pool is for small databases; a server holding
        # a million runs gets a pool that holds its working set.
        cur.execute("SET GLOBAL innodb_buffer_pool_size = 536870912")
    return server.database_config(server.create_database())


def _conf(sc: Scenario, db: DatabaseConfig, log_level: str) -> tuple[Path, dict[str, str]]:
    ports = {name: f"127.0.0.1:{free_port()}" for name in ("dispatcher", "executor", "monitor", "http")}
    conf = write_conf(
        sc.root,
        {
            "database": database_section(db),
            "dispatcher": {"listen": ports["dispatcher"], "executors": ports["executor"], "shutdown_grace_seconds": "5"},
            "executor": {"listen": ports["executor"], "journal": str(sc.root / "journal.db"), "shutdown_grace_seconds": "5"},
            "monitor": {"listen": ports["monitor"], "http_listen": ports["http"]},
            # No pruning while pages are timed: the history stays as loaded.
            "store": {"keep_runs_days": "0", "keep_audit_days": "0"},
            "log": {"level": log_level},
        },
    )
    return conf, ports


def _login(url: str, password: str) -> tuple[httpx.Client, httpx.Client]:
    browser = httpx.Client(base_url=url, follow_redirects=False, timeout=60)
    form = browser.get("/login")
    match = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if not match:
        raise RuntimeError(f"no CSRF field on the login page ({form.status_code})")
    done = browser.post("/login", data={"user": "admin", "password": password, "csrf": match.group(1), "next": "/"})
    if done.status_code != 302:
        raise RuntimeError(f"console login failed: {done.status_code} {done.text[:300]}")
    token = httpx.post(url + "/api/v1/login", json={"user": "admin", "password": password}, timeout=60)
    token.raise_for_status()
    api = httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token.json()['token']}"})
    return browser, api


def pages(loaded: console_data.Loaded, search: str) -> tuple[list[Page], list[Page]]:
    """(console pages, JSON API calls): name and path for the i-th request."""
    jobs_deep = paging.encode([loaded.jobs // 2], ["jobs", ""])
    runs_deep = paging.encode(list(loaded.middle_run), ["runs", 0, "", [], 0, 0])
    failed_deep = paging.encode(list(loaded.middle_run), ["runs", 0, "", ["failed"], 0, 0])
    job = lambda i: loaded.sample_jobs[i % len(loaded.sample_jobs)]  # noqa: E731
    hot = lambda i: loaded.hot_jobs[i % len(loaded.hot_jobs)]  # noqa: E731
    run = lambda i: loaded.sample_runs[i % len(loaded.sample_runs)]  # noqa: E731
    html: list[Page] = [
        ("dashboard", lambda i: "/"),
        ("jobs", lambda i: "/jobs"),
        ("jobs deep page", lambda i: f"/jobs?page={jobs_deep}"),
        ("jobs search", lambda i: f"/jobs?q={search}"),
        ("jobs search (no match)", lambda i: "/jobs?q=zz-nothing"),
        ("runs", lambda i: "/runs"),
        ("runs deep page", lambda i: f"/runs?page={runs_deep}"),
        ("runs of a job", lambda i: f"/runs?job={job(i)}"),
        ("runs of a frequent job", lambda i: f"/runs?job={hot(i)}"),
        ("runs failed", lambda i: "/runs?status=failed"),
        ("runs failed deep page", lambda i: f"/runs?status=failed&page={failed_deep}"),
        ("runs running", lambda i: "/runs?status=running"),
        ("job detail", lambda i: f"/jobs/{job(i)}"),
        ("run detail", lambda i: f"/runs/{run(i)}"),
    ]
    api: list[Page] = [
        ("api executors+dispatchers", lambda i: "/api/v1/executors" if i % 2 == 0 else "/api/v1/dispatchers"),
        ("api jobs", lambda i: "/api/v1/jobs"),
        ("api jobs deep page", lambda i: f"/api/v1/jobs?pageToken={jobs_deep}"),
        ("api jobs search", lambda i: f"/api/v1/jobs?q={search}"),
        ("api runs", lambda i: "/api/v1/runs"),
        ("api runs deep page", lambda i: f"/api/v1/runs?pageToken={runs_deep}"),
        ("api runs of a job", lambda i: f"/api/v1/runs?job={job(i)}"),
        ("api runs failed", lambda i: "/api/v1/runs?status=failed"),
        ("api runs active", lambda i: "/api/v1/runs?status=running&status=pending"),
        ("api job", lambda i: f"/api/v1/jobs/{job(i)}"),
        ("api run", lambda i: f"/api/v1/runs/{run(i)}"),
    ]
    return html, api


def measure(client: httpx.Client, path_of: Callable[[int], str], requests: int, warmup: int) -> tuple[list[float], list[str]]:
    """Times of the requests after the warm-up, and the failures (status and
    time). A page that fails GIVE_UP times is not asked again: at a full scan
    each try waits for the console's 15 s deadline."""
    times: list[float] = []
    failures: list[str] = []
    for i in range(warmup + requests):
        path = path_of(i)
        started = time.perf_counter()
        try:
            response = client.get(path)
            code = str(response.status_code)
        except httpx.HTTPError as exc:
            code = type(exc).__name__
        elapsed = (time.perf_counter() - started) * 1000
        if code != "200":
            failures.append(f"{code} after {elapsed:.0f} ms: GET {path}")
            if len(failures) >= GIVE_UP:
                break
            continue
        if i >= warmup:
            times.append(elapsed)
    return times, failures


def run(
    database: str,
    *,
    jobs: int = 100_000,
    runs: int = 1_000_000,
    requests: int = 30,
    warmup: int = 3,
    out_dir: Path,
    keep: bool = False,
    log_level: str = "WARNING",
) -> dict[str, Any]:
    with Scenario(f"console_pages-{database}", keep) as sc:
        if database == "sqlite":
            db = DatabaseConfig(driver="sqlite", path=str(sc.root / "crontrio.db"))
        elif database == "mariadb":
            db = _mariadb(sc)
        else:
            raise ValueError(f"--databases: unknown {database!r} (sqlite, mariadb)")
        conf, ports = _conf(sc, db, log_level)
        migrate(conf)
        engine = make_engine(db)
        loaded = console_data.load(engine, jobs, runs)
        engine.dispose()
        print(f"bench console_pages/{database}: loaded {jobs} jobs, {loaded.runs} runs in {loaded.seconds:.0f}s", flush=True)

        started = time.monotonic()
        sc.start(Service.crontrio("executor", conf)).wait_serving(ports["executor"])
        sc.start(Service.crontrio("dispatcher", conf)).wait_serving(ports["dispatcher"], timeout=600)
        sc.start(Service.crontrio("monitor", conf))
        url = f"http://{ports['http']}"
        wait_for(lambda: _healthy(url), 120, "the monitor's HTTP port")
        ready_s = time.monotonic() - started
        password_file = sc.root / "var" / "initial-admin-password"
        wait_for(password_file.exists, 60, "the initial admin password")
        browser, api = _login(url, password_file.read_text().strip())

        html_pages, api_pages = pages(loaded, search="payments.sync")
        load_at_start = [round(x, 2) for x in os.getloadavg()]
        timings: dict[str, list[float]] = {}
        failures: dict[str, list[str]] = {}
        for name, path_of in [*html_pages, *api_pages]:
            client = api if name.startswith("api ") else browser
            timings[name], failed = measure(client, path_of, requests, warmup)
            if failed:
                failures[name] = failed
                print(f"  {name:28s} FAILED: {'; '.join(failed)}", flush=True)
                continue
            p = percentiles(timings[name])
            print(f"  {name:28s} p50 {p['p50']:7.1f}  p95 {p['p95']:7.1f}  max {p['max']:7.1f} ms", flush=True)
        counts = _time_count_runs(ports["dispatcher"], str(api.headers["Authorization"]), requests, warmup)
        if counts:
            timings["rpc CountRuns 24 h"] = counts
            p = percentiles(counts)
            print(f"  {'rpc CountRuns 24 h':28s} p50 {p['p50']:7.1f}  p95 {p['p95']:7.1f}  max {p['max']:7.1f} ms", flush=True)
        browser.close()
        api.close()

        every = [t for ts in timings.values() for t in ts]
        per_page = {name: {k: round(v or 0.0, 1) for k, v in percentiles(ts).items()} for name, ts in timings.items() if ts}
        slow = sorted({name for name, p in per_page.items() if p["p95"] > TARGET_P95_MS} | set(failures))
        result = make_result(
            "console_pages",
            database,
            {"jobs": jobs, "runs": runs, "requests": requests, "warmup": warmup},
            sc.started_at,
            expected=len(every) + sum(len(f) for f in failures.values()),
            run=len(every),
            duplicates=0,
            window_seconds=sum(every) / 1000,
            lags_ms=every,
            stats=sc.stats("dispatcher", "monitor"),
            extra={
                "pages": per_page,
                "target_p95_ms": TARGET_P95_MS,
                "over_target": slow,
                "failures": failures,
                "load_seconds": round(loaded.seconds, 1),
                "ready_seconds": round(ready_s, 1),
                "loaded": console_data.describe(loaded),
                "log_problems": sc.log_problems(),
                # The machine is shared: its load says how much of a time was waiting for a core.
                "load_average_at_start": load_at_start,
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            },
        )
        path = write_result(out_dir, result)
        print(f"console_pages/{database}: {len(timings)} pages, over {TARGET_P95_MS:g} ms p95: {slow or 'none'} -> {path}")
        return result


def _time_count_runs(dispatcher: str, authorization: str, requests: int, warmup: int) -> list[float]:
    """Admin.CountRuns over the last 24 h (the dashboard's outcome chart), straight
    over gRPC; [] where the admin API has no such call (older versions)."""
    import grpc

    from crontrio.protos import crontrio_pb2 as pb
    from crontrio.protos import crontrio_pb2_grpc as pb_grpc

    if not hasattr(pb, "CountRunsRequest"):
        return []
    times = []
    with grpc.insecure_channel(dispatcher) as channel:
        stub = pb_grpc.AdminStub(channel)
        for i in range(warmup + requests):
            since = int(time.time() * 1000) - 86_400_000
            started = time.perf_counter()
            stub.CountRuns(pb.CountRunsRequest(since_ms=since), metadata=(("authorization", authorization),), timeout=60)
            if i >= warmup:
                times.append((time.perf_counter() - started) * 1000)
    return times


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def markdown(results: list[dict[str, Any]]) -> str:
    """The RESULTS.md table: one row per page, p50/p95/max per database."""
    names = list(dict.fromkeys(n for r in results for n in [*r["extra"]["pages"], *r["extra"].get("failures", {})]))
    head = "| page | " + " | ".join(f"{r['variant']} p50 / p95 / max (ms)" for r in results) + " |"
    lines = [head, "|---" * (len(results) + 1) + "|"]
    for name in names:
        cells = []
        for r in results:
            p = r["extra"]["pages"].get(name)
            failed = r["extra"].get("failures", {}).get(name)
            if failed:
                cells.append(f"fails: {failed[0].split(': GET')[0]}")
            else:
                cells.append("-" if p is None else f"{p['p50']:g} / **{p['p95']:g}** / {p['max']:g}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    sys.exit(main())
