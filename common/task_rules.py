"""The one rule set for what a task may contain: used by the admin API's job
validation (common/jobs.py) and by the executor's request checks
(executor/runs.py validate_request), so a job the API accepts is a job every
executor runs, and the other way round.

The limits are also what every supported database stores: MariaDB's TEXT
holds 65,535 bytes (SQLite has no limit), `spec` and `target` are
VARCHAR(255), `workdir` VARCHAR(1024), `expected_statuses` VARCHAR(255)
(see common/store/schema.py). Maps and lists are stored as JSON, so their
limit applies to that encoding. A command also has to pass execve(): Linux
refuses one argument over 128 KiB (E2BIG), far above these limits.

Each check raises ValidationError naming the field; the field name is a
parameter because the API and the executor name fields differently
("headers" / "http.headers").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from crontrio.common.errors import ValidationError

# MariaDB TEXT: 65,535 bytes.
MAX_TEXT_BYTES = 65_535
# Cron specs: the `spec` column is VARCHAR(255); also what bounds the work of
# parsing one (PreviewSpec is open to viewers).
MAX_SPEC_CHARS = 255
MAX_TARGET_CHARS = 255
MAX_WORKDIR_CHARS = 1024
MAX_TIMEZONE_CHARS = 64
MAX_COMMAND_BYTES = MAX_TEXT_BYTES
MAX_BODY_BYTES = MAX_TEXT_BYTES
MAX_HEADER_NAME_CHARS = 256
MAX_HEADER_VALUE_BYTES = 8192
MAX_ENV_NAME_CHARS = 256
MAX_KEYWORDS = 100
MAX_KEYWORD_CHARS = 256
# Job metadata (description, owner, tags): descriptive, so kept small; the
# owner is a VARCHAR(128), tags a JSON list in a TEXT column.
MAX_DESCRIPTION_CHARS = 1024
MAX_OWNER_CHARS = 128
MAX_TAGS = 20
MAX_TAG_CHARS = 32
# Lower-case slugs: no quotes or commas, so a tag is found in the stored JSON
# text by a plain LIKE (see SqlStore.list_jobs).
TAG_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
# "200,201,...": four characters a status in a VARCHAR(255).
MAX_EXPECTED_STATUSES = 50

HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# RFC 9110 field-value: visible characters, space and tab (and obs-text);
# CR, LF, NUL and the other controls would split or corrupt the request.
_HEADER_VALUE_BAD = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
USER_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\$?")
# The widest JSON encoding of one character: a surrogate pair, "\ud83d\ude00".
_JSON_CHAR_BYTES = 12


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


def check_stored_json(field: str, value: object, raw_chars: int) -> None:
    """The value's JSON encoding (as the store writes it) fits a TEXT column.

    ``raw_chars`` (the characters in its strings) decides cheaply when it
    surely fits, so the executor's check of every run costs no encoding.
    """
    if raw_chars * _JSON_CHAR_BYTES + 4096 <= MAX_TEXT_BYTES:
        return
    size = len(json.dumps(value, sort_keys=True).encode())
    if size > MAX_TEXT_BYTES:
        raise ValidationError(field, f"too large: {size} bytes stored as JSON, at most {MAX_TEXT_BYTES}")


def check_spec_length(spec: str, field: str = "spec") -> None:
    if len(spec) > MAX_SPEC_CHARS:
        raise ValidationError(field, f"at most {MAX_SPEC_CHARS} characters, got {len(spec)}")


def check_command(command: str, field: str = "command") -> None:
    """A shell command line: not blank, no NUL (execve cannot pass one), bounded."""
    if not command.strip():
        raise ValidationError(field, "must not be empty")
    if "\x00" in command:
        raise ValidationError(field, "must not contain NUL bytes")
    size = _utf8_len(command)
    if size > MAX_COMMAND_BYTES:
        raise ValidationError(field, f"at most {MAX_COMMAND_BYTES} bytes, got {size}")


def check_url_text(url: str, field: str = "command") -> None:
    """The parts of a URL check every side does before parsing it."""
    if not url.startswith(("http://", "https://")):
        raise ValidationError(field, f"expected an http:// or https:// URL, got {url[:100]!r}")
    if _HEADER_VALUE_BAD.search(url) is not None or " " in url or "\t" in url:
        raise ValidationError(field, f"a URL must not contain spaces or control characters, got {url[:100]!r}")
    size = _utf8_len(url)
    if size > MAX_COMMAND_BYTES:
        raise ValidationError(field, f"at most {MAX_COMMAND_BYTES} bytes, got {size}")


def check_body(body: str, field: str = "body") -> None:
    size = _utf8_len(body)
    if size > MAX_BODY_BYTES:
        raise ValidationError(field, f"at most {MAX_BODY_BYTES} bytes, got {size}")


def check_headers(headers: Mapping[str, str], field: str = "headers") -> None:
    raw = 0
    for name, value in headers.items():
        if len(name) > MAX_HEADER_NAME_CHARS or not HEADER_NAME_RE.fullmatch(name):
            raise ValidationError(field, f"{name[:100]!r} is not a valid HTTP header name")
        if _HEADER_VALUE_BAD.search(value) is not None:
            raise ValidationError(field, f"the value of {name!r} must not contain CR, LF, NUL or other control characters")
        size = _utf8_len(value)
        if size > MAX_HEADER_VALUE_BYTES:
            raise ValidationError(field, f"the value of {name!r} is {size} bytes, at most {MAX_HEADER_VALUE_BYTES}")
        raw += len(name) + len(value)
    check_stored_json(field, dict(headers), raw)


def check_env(env: Mapping[str, str], field: str = "env") -> None:
    raw = 0
    for name, value in env.items():
        if len(name) > MAX_ENV_NAME_CHARS or not ENV_NAME_RE.fullmatch(name):
            raise ValidationError(field, f"{name[:100]!r} is not a valid environment variable name")
        if "\x00" in value:
            raise ValidationError(field, f"the value of {name} must not contain NUL bytes")
        raw += len(name) + len(value)
    check_stored_json(field, dict(env), raw)


def check_user(user: str, field: str = "user") -> None:
    if user and not USER_RE.fullmatch(user):
        raise ValidationError(field, f"{user[:100]!r} is not a valid user name")


def check_workdir(workdir: str, field: str = "workdir") -> None:
    if not workdir:
        return
    if not workdir.startswith("/"):
        raise ValidationError(field, f"must be an absolute path, got {workdir[:100]!r}")
    if "\x00" in workdir:
        raise ValidationError(field, "must not contain NUL bytes")
    if len(workdir) > MAX_WORKDIR_CHARS:
        raise ValidationError(field, f"at most {MAX_WORKDIR_CHARS} characters, got {len(workdir)}")


def check_keywords(keywords: Iterable[str], field: str = "keywords") -> None:
    listed = list(keywords)
    if len(listed) > MAX_KEYWORDS:
        raise ValidationError(field, f"at most {MAX_KEYWORDS}, got {len(listed)}")
    for keyword in listed:
        if not keyword or len(keyword) > MAX_KEYWORD_CHARS:
            raise ValidationError(field, f"each keyword must be 1-{MAX_KEYWORD_CHARS} characters, got {keyword[:40]!r}")
    check_stored_json(field, listed, sum(len(k) for k in listed))


def check_expected_statuses(statuses: Iterable[int], field: str = "expected_statuses") -> None:
    listed = list(statuses)
    if len(listed) > MAX_EXPECTED_STATUSES:
        raise ValidationError(field, f"at most {MAX_EXPECTED_STATUSES}, got {len(listed)}")
    for status in listed:
        if not 100 <= status <= 599:
            raise ValidationError(field, f"{status} is not an HTTP status (100-599)")


def check_description(description: str, field: str = "description") -> None:
    """Free text shown to people: newlines and tabs allowed, other controls not
    (they would drive the terminal of whoever lists it)."""
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise ValidationError(field, f"at most {MAX_DESCRIPTION_CHARS} characters, got {len(description)}")
    if _HEADER_VALUE_BAD.search(description.replace("\n", " ")) is not None:
        raise ValidationError(field, "must not contain control characters other than newline and tab")


def check_owner(owner: str, field: str = "owner") -> None:
    """A person or team (e.g. "team-payments", "alice@example.com"): one word."""
    if len(owner) > MAX_OWNER_CHARS:
        raise ValidationError(field, f"at most {MAX_OWNER_CHARS} characters, got {len(owner)}")
    if any(c.isspace() or not c.isprintable() for c in owner):
        raise ValidationError(field, f"must not contain spaces or control characters, got {owner[:100]!r}")


def check_tags(tags: Iterable[str], field: str = "tags") -> None:
    listed = list(tags)
    if len(listed) > MAX_TAGS:
        raise ValidationError(field, f"at most {MAX_TAGS}, got {len(listed)}")
    seen: set[str] = set()
    for tag in listed:
        if not TAG_RE.fullmatch(tag):
            raise ValidationError(
                field,
                f"{tag[:40]!r} is not a tag: 1-{MAX_TAG_CHARS} lower-case letters, digits, '.', '_' or '-', "
                "starting with a letter or digit",
            )
        if tag in seen:
            raise ValidationError(field, f"{tag!r} is listed twice")
        seen.add(tag)
