"""The environment a task starts from (executor/task_env.py)."""

from __future__ import annotations

import os
import pwd

from crontrio.executor.task_env import DEFAULT_PATH, baseline_environment


def test_defaults_when_the_executor_has_no_environment() -> None:
    env = baseline_environment({})
    me = pwd.getpwuid(os.geteuid())
    assert env == {
        "PATH": DEFAULT_PATH,
        "LANG": "C.UTF-8",
        "SHELL": "/bin/sh",
        "HOME": me.pw_dir,
        "USER": me.pw_name,
        "LOGNAME": me.pw_name,
    }  # no TZ: the system zone applies


def test_only_the_baseline_and_allowed_names_are_taken() -> None:
    source = {
        "PATH": "/opt/bin:/usr/bin",
        "HOME": "/srv/cron",
        "USER": "cron",
        "TZ": "Asia/Tokyo",
        "LC_ALL": "de_DE.UTF-8",
        "AWS_SECRET_ACCESS_KEY": "leak",
        "CRONTRIO_DATABASE_PASSWORD": "leak",
    }
    env = baseline_environment(source, ["LC_ALL", "CRONTRIO_DATABASE_PASSWORD", "NOT_THERE"])
    assert env == {
        "PATH": "/opt/bin:/usr/bin",
        "HOME": "/srv/cron",
        "USER": "cron",
        "LOGNAME": "cron",
        "TZ": "Asia/Tokyo",
        "LANG": "C.UTF-8",
        "SHELL": "/bin/sh",
        "LC_ALL": "de_DE.UTF-8",
    }
