"""crontrio, a distributed cron: one namespace for all of its packages.

Installed, everything lives here (crontrio.common, crontrio.dispatcher, ...);
in the checkout each crontrio/<pkg> is a symlink to the top-level directory,
so Python, mypy and ruff resolve the same names in both.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crontrio")
except PackageNotFoundError:  # a checkout that was never pip-installed
    __version__ = "0+unknown"
