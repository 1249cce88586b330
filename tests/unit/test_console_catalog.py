"""Every text the console shows has a Simplified Chinese translation: the
templates, every console module (messages, flashes, labels, sort names), the
run statuses and job states, and the field labels errors are named with."""

from __future__ import annotations

import re
from pathlib import Path

from crontrio import console
from crontrio.common import status
from crontrio.common.model import TRIGGER_CATCH_UP, TRIGGER_MANUAL, TRIGGER_SCHEDULE
from crontrio.console import charts, errors, jobslist, pages, readpaths
from crontrio.console.i18n import LANGUAGES, translator

HERE = Path(console.__file__).parent
# Python sources: texts handed to the page as messages, or to a translator.
_PY_TEXTS = (
    r'message="([^"]+)"',
    r'login_form\(request, "([^"]+)"',
    r'_account_error\(request, session, "([^"]+)"',
    r'\)\("([^"]+)"\)',  # translator(lang)("...")
    r'\b_\("([^"]+)"\)',
    r'error = "([^"]+)"',
)


def console_texts() -> set[str]:
    texts: set[str] = set()
    for template in (HERE / "templates").glob("*.html"):
        found = re.findall(r"""\b_\(\s*"([^"]+)"\s*\)|\b_\(\s*'([^']+)'\s*\)""", template.read_text())
        texts |= {double or single for double, single in found}
    for module in HERE.glob("*.py"):
        source = module.read_text()
        for pattern in _PY_TEXTS:
            texts |= set(re.findall(pattern, source))
    texts |= set(pages.FLASH.values())
    texts |= status.ALL | set(readpaths.JOB_STATES) | {"active"} | {TRIGGER_SCHEDULE, TRIGGER_MANUAL, TRIGGER_CATCH_UP}
    texts |= {label for _, label in jobslist._SORT_LABELS}
    texts |= set(errors.LABELS.values())
    texts |= {name for name, _ in charts.OUTCOMES}
    return texts


def test_the_chinese_catalog_is_complete() -> None:
    catalog = LANGUAGES["zh-CN"][1]
    texts = console_texts()
    assert len(texts) > 150
    missing = sorted(t for t in texts if t not in catalog)
    assert not missing, f"no Chinese for: {missing}"
    assert all(value.strip() for value in catalog.values())


def test_errors_name_the_field_in_the_readers_language_and_keep_the_message() -> None:
    zh = translator("zh-CN")
    assert errors.translated("spec: bad minute field '61'", zh) == "时间表达式: bad minute field '61'"
    assert errors.translated("timeout: must be at most 7 days", zh).startswith(zh("Timeout (seconds)") + ": ")
    assert errors.translated("env[2]: name 'A B' is not valid", zh) == f"{zh('Environment')}[2]: name 'A B' is not valid"
    assert errors.translated("tag: not a slug", zh) == "标签: not a slug"
    # A whole message in the catalog is translated; an unknown field stays as said.
    assert (
        errors.translated("No dispatcher is reachable.", zh) == zh("No dispatcher is reachable.") != "No dispatcher is reachable."
    )
    assert errors.translated("frobnicate: what", zh) == "frobnicate: what"
    assert errors.translated("spec: bad", translator("en")) == "spec: bad"  # English: as the API says


def test_templates_hold_no_text_outside_the_catalog() -> None:
    """Text a page shows goes through _(): no bare words between tags, and
    no literal title/placeholder/aria-label/alt (a missed string would show
    in English on a Chinese page, and the catalog test could not see it)."""
    for template in (HERE / "templates").glob("*.html"):
        source = template.read_text()
        text = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", "", source, flags=re.S)
        text = re.sub(r"<[^>]*>", " ", text, flags=re.S)
        words = set(re.findall(r"[A-Za-z]{3,}", text)) - {"crontrio", "UTC"}
        assert not words, f"{template.name}: bare text {sorted(words)}"
        literal = set(re.findall(r'\b(?:title|placeholder|aria-label|alt)="([^"{]*[A-Za-z][^"{]*)"', source)) - {
            "host:port",
            "job.update",
        }  # examples of values
        assert not literal, f"{template.name}: literal attribute text {literal}"
