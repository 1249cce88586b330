"""The environment a task starts from: a clean baseline, never the executor's.

The executor is started with its own configuration and secrets in its
environment (CRONTRIO_* overrides such as CRONTRIO_DATABASE_PASSWORD,
CRONTRIO_MONITOR_TOKEN, CRONTRIO_CLUSTER_SECRET, whatever the init system or
the operator's shell exported). A job that runs ``env`` must see none of it.
So a task gets, in this order (later wins):

1. the baseline PATH, HOME, LANG, USER, LOGNAME, SHELL, TZ: the executor's
   values when it has them, else defaults (a standard PATH, LANG=C.UTF-8,
   SHELL=/bin/sh, HOME/USER/LOGNAME of the executor's own user; TZ only when
   set, so the system zone applies otherwise);
2. the names the operator allowed in ``[executor] inherit_env``, with the
   executor's values (never a CRONTRIO_* name);
3. the run-as user's HOME, USER, LOGNAME, SHELL when the job has ``--user``;
4. the job's own env;
5. the CRONTRIO_RUN_ID / CRONTRIO_JOB_* run variables (executor/shell_task.py).
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable, Mapping

BASELINE_NAMES = ("PATH", "HOME", "LANG", "USER", "LOGNAME", "SHELL", "TZ")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_LANG = "C.UTF-8"
DEFAULT_SHELL = "/bin/sh"
# Never passed on, whatever inherit_env says (common.config refuses them too).
SERVICE_PREFIX = "CRONTRIO_"


def _own_user() -> dict[str, str]:
    """HOME, USER and LOGNAME of the user the executor runs as."""
    try:
        entry = pwd.getpwuid(os.geteuid())
    except KeyError:  # a uid with no passwd entry (some containers)
        return {"HOME": "/"}
    return {"HOME": entry.pw_dir or "/", "USER": entry.pw_name, "LOGNAME": entry.pw_name}


def baseline_environment(source: Mapping[str, str], inherit: Iterable[str] = ()) -> dict[str, str]:
    """The baseline plus the allowlisted names, taken from `source` (the
    executor's environment as it was started)."""
    env = {name: source[name] for name in BASELINE_NAMES if name in source}
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("LANG", DEFAULT_LANG)
    env.setdefault("SHELL", DEFAULT_SHELL)
    if "USER" in env:
        env.setdefault("LOGNAME", env["USER"])
    if not {"HOME", "USER", "LOGNAME"} <= env.keys():
        for name, value in _own_user().items():
            env.setdefault(name, value)
    for name in inherit:
        if name in source and not name.upper().startswith(SERVICE_PREFIX):
            env[name] = source[name]
    return env
