"""python -m crontrio.console [-c conf.ini]: the web console and JSON API alone,
on [console] listen (default [monitor] http_listen)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from crontrio.common.config import Config
from crontrio.common.runtime import build_arg_parser, install_stop_signals, load_config_or_exit, run_loop, setup_logging
from crontrio.console.app import build_app

log = logging.getLogger("console")


async def serve(cfg: Config, stop: asyncio.Event) -> None:
    listen = cfg.console_listen
    if not listen:
        raise SystemExit("console: nothing to listen on: set [console] listen (or [monitor] http_listen)")
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(build_app(cfg), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]"), int(port))
    await site.start()
    log.info("console on http://%s/ (admin API at %s)", listen, ", ".join(cfg.console_dispatchers))
    await stop.wait()
    log.info("stopping")
    await runner.cleanup()
    log.info("console stopped")


def main() -> None:
    parser = build_arg_parser("console", "The crontrio web console and JSON API, a client of the dispatchers' admin API.")
    args = parser.parse_args()
    cfg = load_config_or_exit(args.config)
    setup_logging("console", cfg, args.log_level)

    async def run() -> None:
        stop = asyncio.Event()
        install_stop_signals(asyncio.get_running_loop(), stop.set)
        await serve(cfg, stop)

    try:
        run_loop(run())
    except OSError as exc:
        log.critical("cannot start: %s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
