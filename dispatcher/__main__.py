"""python -m crontrio.dispatcher [-c conf.ini]"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import OperationalError

from crontrio.common.runtime import build_arg_parser, install_stop_signals, load_config_or_exit, run_loop, setup_logging
from crontrio.common.store.migrate import SchemaError
from crontrio.dispatcher.app import serve


def main() -> None:
    parser = build_arg_parser(
        "dispatcher",
        "Fires jobs on time, exactly once: computes next fire times, claims each firing, "
        "runs it on an executor over gRPC and records the run. Serves the admin API used by cronctl.",
    )
    args = parser.parse_args()
    cfg = load_config_or_exit(args.config)
    setup_logging("dispatcher", cfg, args.log_level)

    async def run() -> None:
        stop = asyncio.Event()
        install_stop_signals(asyncio.get_running_loop(), stop.set)
        await serve(cfg, stop)

    try:
        run_loop(run())
    except (SchemaError, OperationalError) as exc:
        # One clear line, not a traceback: the operator has a database to fix.
        logging.getLogger("dispatcher").critical("cannot start: %s", getattr(exc, "orig", None) or exc)
        raise SystemExit(2) from None
    except OSError as exc:
        logging.getLogger("dispatcher").critical("cannot start: %s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
