"""Errors shared by every component."""

from __future__ import annotations


class ValidationError(ValueError):
    """Bad input, named by the field it is about.

    Raised before anything is stored; services turn it into INVALID_ARGUMENT and
    cronctl into exit code 2, both with the field name first so the user knows
    exactly what to fix.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ConfigError(ValueError):
    """conf.ini (or a CRONTRIO_* override) is wrong; names `section.key`."""
