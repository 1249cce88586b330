"""One name per module: everything is imported as crontrio.<pkg>, never as the
old top-level names (common, dispatcher, ...), which the checkout still has as
directories (crontrio/<pkg> are symlinks to them)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from testing_support.services import REPO

SCRIPT = REPO / "scripts" / "namespace_imports.py"
PACKAGES = ("common", "dispatcher", "executor", "monitor", "console", "cronctl", "protos")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("namespace_imports", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nothing_in_the_tree_uses_the_old_top_level_names() -> None:
    # The rewrite script in --check mode is the grep: imports, `-m pkg` commands,
    # module paths in strings (patch targets, logger names) in code, tests, docs.
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--no-ruff"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"old top-level names still used (run scripts/namespace_imports.py):\n{result.stdout}"


def test_the_rewrite_covers_every_form_and_is_idempotent() -> None:
    rewrite = _script().rewrite
    source = """\
from common.config import Config
import dispatcher.app as app
import cronctl.client
import protos
    from monitor.reconcile import reconcile  # late import
from crontrio.common.jobs import validate_job
from commonmark import x
import executorlib
argv = [sys.executable, "-m", "executor", "-c", conf]
cli = [sys.executable, "-m", "cronctl.main", "job", "list"]
logger = "common.alerts.sender"
target = "dispatcher.app.serve"
key = "executor.id"
other = "monitor.no_such_module"
doc = "run `python -m monitor migrate` or `python -m bench.run`"
"""
    expected = """\
from crontrio.common.config import Config
import crontrio.dispatcher.app as app
import crontrio.cronctl.client  # noqa: F401 - loads cronctl.client for the name below
from crontrio import cronctl
from crontrio import protos
    from crontrio.monitor.reconcile import reconcile  # late import
from crontrio.common.jobs import validate_job
from commonmark import x
import executorlib
argv = [sys.executable, "-m", "crontrio.executor", "-c", conf]
cli = [sys.executable, "-m", "crontrio.cronctl.main", "job", "list"]
logger = "crontrio.common.alerts.sender"
target = "crontrio.dispatcher.app.serve"
key = "executor.id"
other = "monitor.no_such_module"
doc = "run `python -m crontrio.monitor migrate` or `python -m bench.run`"
"""
    path = REPO / "tests" / "sample.py"
    once = rewrite(source, path, [])
    assert once == expected
    assert rewrite(once, path, []) == once
    shell = (
        '"$py" -m monitor -c "$conf" migrate\nexec python -m dispatcher|executor\n'
        "$py -c 'import sys; from common.config import x'\n"
    )
    expected_shell = (
        '"$py" -m crontrio.monitor -c "$conf" migrate\nexec python -m crontrio.dispatcher|executor\n'
        "$py -c 'import sys; from crontrio.common.config import x'\n"
    )
    assert rewrite(shell, REPO / "run.sh", []) == expected_shell
    assert rewrite(expected_shell, REPO / "run.sh", []) == expected_shell


@pytest.mark.parametrize("package", PACKAGES)
def test_an_old_top_level_name_refuses_to_import(package: str, tmp_path: Path) -> None:
    # From the repository root (on sys.path, as with `python -m` there) the old
    # name would load every module a second time; it fails instead, naming the new one.
    result = subprocess.run([sys.executable, "-c", f"import {package}"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"ImportError: import crontrio.{package}, not {package}" in result.stderr, result.stderr
