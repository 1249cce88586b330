#!/usr/bin/env python3
"""Move every reference to crontrio's own packages under the `crontrio.` namespace.

    python3 scripts/namespace_imports.py [--check] [--no-ruff] [PATH ...]

Installed, crontrio is one package, `crontrio`, holding common, dispatcher,
executor, monitor, console, cronctl and protos (in the checkout `crontrio/<pkg>`
is a symlink to the top-level directory). This script rewrites the old
top-level names, and only those not already under `crontrio.`:

- Python imports (in .py files and in Markdown code blocks): `from common.x import y` -> `from crontrio.common.x import y`;
  `import common.x as c` -> `import crontrio.common.x as c`; a bare
  `import cronctl.client` (used as `cronctl.client.X`) becomes
  `import crontrio.cronctl.client` plus `from crontrio import cronctl`, so
  the name it binds still works.
- inline code after a quote or `;` (`python -c 'import sys; from common.config import ...'`).
- `-m <pkg>` commands anywhere (Python lists `"-m", "executor"`, shell lines,
  Makefile, README, docs, conf comments, unit files).
- Python string literals naming a real module of ours, possibly followed by
  attributes: logger names, mock/patch targets, importlib paths
  (`"common.alerts.sender"`, `"dispatcher.app.serve"`). A dotted string counts
  only if its leading part is a module file or package in the tree, so conf
  keys such as "executor.id" are left alone.

Idempotent: run it again on a merged tree and it changes only what other
branches added. It prints every file it changes (and every string literal it
rewrites, to review), then, unless --no-ruff, runs `ruff check --select I
--fix` on the changed Python files so the longer import lines are re-wrapped
and re-sorted. --check changes nothing and exits 1 if something would change.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "dispatcher", "executor", "monitor", "console", "cronctl", "protos")
NS = "crontrio"
PKG = "|".join(PACKAGES)

SKIP_DIRS = {".git", ".venv", "build", "dist", NS, "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
SKIP_PATHS = ("bench/results", "bench/.venv-peers")
SKIP_FILES = {"namespace_imports.py", "test_namespace.py", "crontrio_pb2.py", "crontrio_pb2_grpc.py", "crontrio_pb2.pyi"}
TEXT_SUFFIXES = {".py", ".sh", ".md", ".ini", ".service", ".cfg", ".toml", ".txt", ".yml", ".yaml", ".mako", ".html", ".js"}
TEXT_NAMES = {"Makefile"}

# `from common.x import y`, at any indentation (imports inside functions too).
FROM_RE = re.compile(rf"^(?P<indent>[ \t]*)from (?P<mod>(?:{PKG})(?:\.\w+)*) import ", re.M)
# `import common.x [as c]`, one module per statement.
IMPORT_RE = re.compile(
    rf"^(?P<indent>[ \t]*)import (?P<mod>(?:{PKG})(?:\.\w+)*)(?P<alias>[ \t]+as[ \t]+\w+)?[ \t]*(?P<end>#.*)?$", re.M
)
# `-m executor`, `"-m", "cronctl.main"`, `'-m' 'x'`; the package name must end there or go on with a dot.
DASH_M_RE = re.compile(rf"""(?P<lead>(?<![\w-])-m(?:\s+|["'],\s*["']))(?P<pkg>{PKG})(?=[.\s"'`|)\]]|$)""", re.M)
# Inline code (`python -c 'import sys; from common.config import ...'`): after a quote or a semicolon.
INLINE_FROM_RE = re.compile(rf"""(?P<lead>['";][ \t]*)from (?P<mod>(?:{PKG})(?:\.\w+)*) import """)
# A dotted string literal starting with one of our packages.
STRING_RE = re.compile(rf"""(?P<q>["'])(?P<path>(?:{PKG})(?:\.\w+)+)(?P=q)""")


def is_module_path(dotted: str) -> bool:
    """Whether `dotted` starts with a module of ours below the top-level package (the rest may be attributes).

    "common.alerts.sender" and "dispatcher.app.serve" count; "executor.id" (a conf key) does not.
    """
    parts = dotted.split(".")
    base = ROOT / parts[0]
    for part in parts[1:]:
        if (base / part / "__init__.py").exists():
            base = base / part
            continue
        return (base / f"{part}.py").exists()
    return True


def rewrite_imports(text: str) -> str:
    text = FROM_RE.sub(lambda m: f"{m['indent']}from {NS}.{m['mod']} import ", text)

    def imp(m: re.Match[str]) -> str:
        indent, mod, alias, end = m["indent"], m["mod"], m["alias"] or "", m["end"] or ""
        comment = f"  {end}" if end else ""
        if alias:
            return f"{indent}import {NS}.{mod}{alias}{comment}"
        top = mod.split(".")[0]
        if "." not in mod:
            return f"{indent}from {NS} import {top}{comment}"
        # `import a.b` binds `a`; keep that name bound to the package under crontrio.
        return (
            f"{indent}import {NS}.{mod}  # noqa: F401 - loads {mod} for the name below{comment}\n{indent}from {NS} import {top}"
        )

    return IMPORT_RE.sub(imp, text)


def rewrite_python(text: str, path: Path, report: list[str]) -> str:
    text = rewrite_imports(text)

    def string(m: re.Match[str]) -> str:
        if not is_module_path(m["path"]):
            return m[0]
        line = text.count("\n", 0, m.start()) + 1
        report.append(f"  {path.relative_to(ROOT)}:{line}: {m[0]} -> {m['q']}{NS}.{m['path']}{m['q']}")
        return f"{m['q']}{NS}.{m['path']}{m['q']}"

    return STRING_RE.sub(string, text)


def rewrite(text: str, path: Path, report: list[str]) -> str:
    if path.suffix == ".py":
        text = rewrite_python(text, path, report)
    elif path.suffix == ".md":  # Python examples in the docs (README's client example is run by a test)
        text = rewrite_imports(text)
    text = INLINE_FROM_RE.sub(lambda m: f"{m['lead']}from {NS}.{m['mod']} import ", text)
    return DASH_M_RE.sub(lambda m: f"{m['lead']}{NS}.{m['pkg']}", text)


def skipped_dir(rel: str, name: str) -> bool:
    path = name if rel == "." else f"{rel}/{name}"
    return name in SKIP_DIRS or name.endswith(".egg-info") or path in SKIP_PATHS


def candidates(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for start in paths:
        if start.is_file():
            found.append(start)
            continue
        for dirpath, dirnames, filenames in os.walk(start):  # never follows the crontrio/ symlinks
            rel = Path(dirpath).relative_to(ROOT).as_posix()
            dirnames[:] = sorted(d for d in dirnames if not skipped_dir(rel, d))
            for name in sorted(filenames):
                p = Path(dirpath) / name
                if name in SKIP_FILES or p.is_symlink():
                    continue
                if p.suffix in TEXT_SUFFIXES or name in TEXT_NAMES:
                    found.append(p)
    return found


def find_ruff() -> str | None:
    local = ROOT / ".venv" / "bin" / "ruff"
    return str(local) if local.exists() else shutil.which("ruff")


def formatted(ruff: str, files: list[Path]) -> list[Path]:
    """The files `ruff format` would leave as they are (before the rewrite)."""
    result = subprocess.run([ruff, "format", "--check", *map(str, files)], cwd=ROOT, capture_output=True, text=True, check=False)
    unformatted = {line.split(":", 1)[1].strip() for line in result.stdout.splitlines() if line.startswith("Would reformat:")}
    return [f for f in files if str(f.relative_to(ROOT)) not in unformatted and str(f) not in unformatted]


def run_ruff(ruff: str, files: list[Path], clean: list[Path]) -> None:
    """Re-sort the imports; re-wrap lines the longer names made too long, but only
    in files that were ruff-formatted before (so nothing else is reformatted)."""
    subprocess.run([ruff, "check", "--quiet", "--select", "I", "--fix", *map(str, files)], cwd=ROOT, check=False)
    if clean:
        subprocess.run([ruff, "format", "--quiet", *map(str, clean)], cwd=ROOT, check=False)
    left = subprocess.run(
        [ruff, "check", "--select", "E501", "--output-format", "concise", *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if left.returncode:
        print("lines to wrap by hand:\n" + left.stdout, file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="files or directories (default: the whole repository)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if something would change")
    parser.add_argument("--no-ruff", action="store_true", help="do not re-sort the imports of changed files with ruff")
    args = parser.parse_args()
    starts = [p.resolve() for p in args.paths] or [ROOT]
    changed: list[Path] = []
    report: list[str] = []
    updates: dict[Path, str] = {}
    for path in candidates(starts):
        try:
            old = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        new = rewrite(old, path, report)
        if new != old:
            changed.append(path)
            updates[path] = new
    py = [p for p in changed if p.suffix == ".py"]
    ruff = None if (args.check or args.no_ruff or not py) else find_ruff()
    clean = formatted(ruff, py) if ruff else []
    if not args.check:
        for path, new in updates.items():
            path.write_text(new, encoding="utf-8")
    for path in changed:
        print(("would change " if args.check else "changed ") + str(path.relative_to(ROOT)))
    if report:
        print("string literals naming our modules:")
        print("\n".join(report))
    if ruff:
        run_ruff(ruff, py, clean)
    elif py and not args.check and not args.no_ruff:
        print("ruff not found: run `ruff check --select I --fix` on the changed files yourself", file=sys.stderr)
    print(f"{len(changed)} file(s) {'to change' if args.check else 'changed'}", file=sys.stderr)
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
