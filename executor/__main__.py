"""``python -m executor [-c conf.ini] [--log-level L]``"""

from __future__ import annotations

import asyncio
import logging

from common.runtime import build_arg_parser, load_config_or_exit, setup_logging
from executor.app import serve


def main(argv: list[str] | None = None) -> int:
    parser = build_arg_parser("executor", "crontrio executor: runs shell and HTTP tasks for the dispatchers")
    args = parser.parse_args(argv)
    cfg = load_config_or_exit(args.config)
    setup_logging("executor", cfg, args.log_level)
    try:
        asyncio.run(serve(cfg))
    except OSError as exc:
        logging.getLogger("executor").error("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
