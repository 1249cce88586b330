"""python -m crontrio.monitor [-c conf.ini] [serve | migrate [--examples]]"""

from __future__ import annotations

import logging

from crontrio.common.runtime import build_arg_parser, load_config_or_exit, serve_until_stopped, setup_logging
from crontrio.common.store.engine import make_engine
from crontrio.common.store.migrate import upgrade
from crontrio.common.store.sql_store import SqlStore
from crontrio.monitor.app import serve
from crontrio.monitor.examples import seed_examples

log = logging.getLogger("monitor")


def main() -> None:
    parser = build_arg_parser(
        "monitor",
        "Hot-loads job changes (including plain-SQL edits) into the dispatchers, watches executor health, "
        "and owns the database schema.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="run the monitor (the default)")
    migrate = commands.add_parser("migrate", help="create or upgrade the database schema, then exit")
    migrate.add_argument(
        "--examples", action="store_true", help="also add the example jobs when the job table is empty and never had them"
    )
    args = parser.parse_args()
    cfg = load_config_or_exit(args.config)
    setup_logging("monitor", cfg, args.log_level)

    if args.command == "migrate":
        engine = make_engine(cfg.database)
        try:
            before, after = upgrade(engine, cfg.database)
            if before == after:
                log.info("database schema already at %s", after)
            if args.examples:
                seed_examples(SqlStore(engine), cfg)
        finally:
            engine.dispose()
        return

    serve_until_stopped("monitor", serve, cfg)


if __name__ == "__main__":
    main()
