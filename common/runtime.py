"""What every service's `crontrio-<service>` (`python -m crontrio.<service>`) shares: arguments, logging, signals."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from crontrio import __version__
from crontrio.common.config import Config, load_config
from crontrio.common.errors import ConfigError
from crontrio.common.text import EscapeControlsFilter

T = TypeVar("T")

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(component)s %(name)s: %(message)s"


def build_arg_parser(service: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"crontrio-{service}",
        description=description,
        epilog="Every conf.ini key can be overridden by CRONTRIO_<SECTION>_<KEY>, e.g. CRONTRIO_DATABASE_PATH.",
    )
    parser.add_argument(
        "-c", "--config", metavar="PATH", help="conf.ini to read (default: conf/conf.ini when it exists, else built-in defaults)"
    )
    parser.add_argument("--log-level", metavar="LEVEL", help="override [log] level (DEBUG, INFO, WARNING, ERROR)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def load_config_or_exit(path: str | None) -> Config:
    """Load the config, or print the `section.key` problem and exit 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


class _ComponentFilter(logging.Filter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def filter(self, record: logging.LogRecord) -> bool:
        record.component = self.component
        return True


def setup_logging(service: str, cfg: Config, level_override: str | None = None) -> str:
    """Log lines carry the component identity (service[host:pid]); returns it."""
    component = f"{service}[{socket.gethostname()}:{os.getpid()}]"
    handler: logging.Handler
    if cfg.log.file:
        os.makedirs(os.path.dirname(os.path.abspath(cfg.log.file)), exist_ok=True)
        handler = logging.FileHandler(cfg.log.file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_ComponentFilter(component))
    handler.addFilter(EscapeControlsFilter())  # user-supplied names and ids never forge a log line
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level_override or cfg.log.level).upper())
    # grpc and httpx are chatty at INFO about things the services log themselves.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return component


# A second signal forces an exit only if it comes this long after the first:
# Ctrl-C reaches every process of the terminal's group at once, and a
# launcher that forwards the stop adds a second copy milliseconds later.
FORCE_AFTER_SECONDS = 1.0


def install_stop_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
    """SIGTERM and SIGINT (Ctrl-C) ask for a graceful stop; a later second one forces it."""
    first_at: float | None = None

    def handler(signum: int) -> None:
        nonlocal first_at
        name = signal.Signals(signum).name
        if first_at is None:
            first_at = time.monotonic()
            logging.getLogger(__name__).info("%s received: stopping gracefully (send it again to force)", name)
            stop()
        elif time.monotonic() - first_at >= FORCE_AFTER_SECONDS:
            logging.getLogger(__name__).warning("second %s: exiting now without a graceful stop", name)
            os._exit(130)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handler, sig)


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, on uvloop when it is installed (unless CRONTRIO_EVENT_LOOP=asyncio)."""
    if os.environ.get("CRONTRIO_EVENT_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def serve_until_stopped(service: str, serve: Callable[[Config, asyncio.Event], Awaitable[None]], cfg: Config) -> None:
    """Run `serve(cfg, stop)` until SIGTERM or SIGINT sets `stop`.

    A start-up failure the operator must fix is one critical line, not a
    traceback: exit 2 for a database that cannot be used (unreachable, or a
    schema this version cannot run on), exit 1 for what the OS refused (a
    port in use, a file that cannot be read).
    """
    # Imported here: only the services that open the store come this way, and
    # the executor (which has no database) need not load alembic to start.
    from sqlalchemy.exc import OperationalError

    from crontrio.common.store.migrate import SchemaError

    async def run() -> None:
        stop = asyncio.Event()
        install_stop_signals(asyncio.get_running_loop(), stop.set)
        await serve(cfg, stop)

    log = logging.getLogger(service)
    try:
        run_loop(run())
    except (SchemaError, OperationalError) as exc:
        log.critical("cannot start: %s", getattr(exc, "orig", None) or exc)
        raise SystemExit(2) from None
    except OSError as exc:
        log.critical("cannot start: %s", exc)
        raise SystemExit(1) from None
