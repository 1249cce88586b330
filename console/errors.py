"""Admin API error messages in the interface's language.

The dispatcher writes its messages in English, naming the field first
("spec: bad minute field '61'", "env[0]: ..."). The console cannot
translate every message, but it can name the field in the reader's language
and keep the message: "时间表达式: bad minute field '61'". A whole message
that is in the catalog is translated too.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from crontrio.console import jobform

# "spec: ...", "env[0]: ...", "after[1].job: ..."
_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])?(?:\.[A-Za-z_]+)?): (.*)$", re.S)
# Field names the admin API uses outside the job form, with their labels.
_OTHER_LABELS = {
    "tag": "Tag",
    "owner": "Owner",
    "password": "Password",
    "current_password": "Current password",
    "page_token": "Page",
    "limit": "Page size",
    "order_by": "Sort by",
    "job": "Job",
    "user": "User name",
}
LABELS: dict[str, str] = {f.name: f.label for g in jobform.GROUPS for f in g.fields} | _OTHER_LABELS


def label_of(field: str) -> str:
    """The English label of an admin API field name ("" when it has none)."""
    return LABELS.get(jobform.ALIASES.get(field, field), "")


def translated(details: str, _: Callable[[str], str]) -> str:
    """The message with its field named in the reader's language."""
    whole = _(details)
    if whole != details:
        return whole
    match = _FIELD.match(details)
    if not match:
        return details
    name, index, message = match.groups()
    label = label_of(name)
    if not label or _(label) == label:
        # English (or a language without this label): as the dispatcher said,
        # so the field name matches the API, cronctl and the docs.
        return details
    return f"{_(label)}{index}: {_(message)}"
