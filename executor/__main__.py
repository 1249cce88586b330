"""``python -m crontrio.executor [-c conf.ini] [--log-level L]``"""

from __future__ import annotations

import os

# Tasks take their baseline and [executor] inherit_env names from the
# environment as it was started, not the change below (executor/task_env.py).
TASK_ENVIRONMENT = dict(os.environ)
# gRPC's fork handlers (on by default in grpcio's core) make fork() unsafe
# while the server runs: the child may start gRPC threads and crash (SIGSEGV)
# before it execs. Shell tasks run as another user are forked, not vforked
# (Popen cannot use vfork with user=, group= or extra_groups=), and exec at
# once: the case gRPC documents this setting for. It must be set before grpc
# is first imported.
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

import gc  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402

from crontrio.common.runtime import build_arg_parser, load_config_or_exit, run_loop, setup_logging  # noqa: E402
from crontrio.executor.app import serve  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = build_arg_parser("executor", "crontrio executor: runs shell and HTTP tasks for the dispatchers")
    args = parser.parse_args(argv)
    cfg = load_config_or_exit(args.config)
    setup_logging("executor", cfg, args.log_level)
    # Thousands of runs at once keep hundreds of thousands of objects alive
    # (tasks, futures, gRPC calls); with the default thresholds the cyclic GC
    # walks all of them again every few thousand allocations during a burst
    # (6-7 full collections, ~1 s of CPU per 5,000 runs, holding the GIL).
    # Objects from imports and setup never become garbage: freeze them.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    # A journal write past the file size limit (ulimit -f) must fail with
    # EFBIG, which the journal reports and survives (like ENOSPC), rather than
    # kill the executor. CPython ignores SIGXFSZ at start-up already; this
    # says it where it matters. Tasks get the default back (Popen's
    # restore_signals).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        run_loop(serve(cfg, TASK_ENVIRONMENT))
    except OSError as exc:
        logging.getLogger("executor").error("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
