"""python -m crontrio.dispatcher [-c conf.ini]"""

from __future__ import annotations

from crontrio.common.runtime import build_arg_parser, load_config_or_exit, serve_until_stopped, setup_logging
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
    serve_until_stopped("dispatcher", serve, cfg)


if __name__ == "__main__":
    main()
