"""Cron spec text, checked: macros, ``@every``, the fields of a 5- or 6-field
expression (range, name and form checks with precise messages), ``H``
resolved per job name with croniter's own hashing, and the ``CRON_TZ=``
prefix. The result is a zone-independent :class:`Rule` (a wall-clock
Calendar), cached by spec text, by resolved fields and by field.

common/cron.py turns a Rule and a zone into fire times; this module knows
nothing of time zones beyond checking the prefix's name.
"""

from __future__ import annotations

import functools
import re

from croniter import CroniterError, croniter
from croniter.croniter import HashExpander

from crontrio.common.cron_calendar import Calendar, DayRule
from crontrio.common.cron_zone import DAY, HOUR, validate_timezone
from crontrio.common.errors import ValidationError

__all__ = ["Rule", "Template", "checked_rule", "hash_fields", "spec_template", "zone_prefix"]

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# (name, min, max) per field, in the order written.
_FIELDS_5 = (("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12), ("day-of-week", 0, 7))
_FIELDS_6 = (("second", 0, 59), *_FIELDS_5)

_NAMES: dict[str, dict[str, int]] = {
    "month": {
        m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))
    },
    "day-of-week": {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}

_HASH_RE = re.compile(r"h(\(\d+-\d+\))?(/\d+)?", re.IGNORECASE)
_RANDOM_RE = re.compile(r"r(\(\d+-\d+\))?(/\d+)?", re.IGNORECASE)
_ATOM_RE = re.compile(r"[0-9]+|[a-z]+", re.IGNORECASE)
_LAST_DOW_RE = re.compile(r"([0-9]+|[a-z]{3})l", re.IGNORECASE)


def _atom(field: str, atom: str, lo: int, hi: int) -> int | None:
    """Value of a plain number or name; raise if it is out of range.

    None for letters that are not a name of this field (left to croniter,
    which knows the special forms).
    """
    if atom.isdigit():
        value = int(atom)
        if not lo <= value <= hi:
            raise ValidationError("spec", f"field '{field}' value {value} out of range {lo}-{hi}")
        return value
    names = _NAMES.get(field)
    if names is not None and atom.lower() in names:
        return names[atom.lower()]
    if names is not None and len(atom) == 3:
        raise ValidationError("spec", f"field '{field}' has unknown name '{atom}'")
    return None


def _rewrite_field(field: str, text: str, lo: int, hi: int) -> str:
    """Check one non-hashed field; return it in the form croniter should get.

    Gives precise messages for the common mistakes and papers over two
    croniter quirks: it reads an equal range ("5-5") as the WHOLE field, and
    it only understands last-weekday-of-month as "L5", not "5L".
    """
    # The common forms first: '*' and a plain number need no rewriting.
    if text == "*":
        return text
    if text.isascii() and text.isdigit():
        _atom(field, text, lo, hi)  # raises if out of range
        return text
    out = []
    for item in text.split(","):
        if not item:
            raise ValidationError("spec", f"field '{field}' has an empty list item in '{text}'")
        base, slash, step = item.partition("/")
        if slash and (not step.isdigit() or int(step) == 0):
            raise ValidationError("spec", f"field '{field}' step '{step}' must be a positive integer")
        if base == "?" and field not in ("day-of-month", "day-of-week"):
            raise ValidationError("spec", f"field '{field}': '?' is only allowed in day-of-month and day-of-week")
        if base in ("*", "?"):
            out.append(item)
            continue
        if field == "day-of-week" and not slash and (m := _LAST_DOW_RE.fullmatch(base)):
            value = _atom(field, m.group(1), lo, hi)
            if value is not None:
                out.append(f"L{value % 7}")
                continue
        low, dash, high = base.partition("-")
        if _ATOM_RE.fullmatch(low) and (not dash or _ATOM_RE.fullmatch(high)):
            a = _atom(field, low, lo, hi)
            b = _atom(field, high, lo, hi) if dash else None
            if dash and a is not None and a == b:
                out.append(str(a))  # "5-5" and "5-5/n" mean just 5
                continue
        out.append(item)
    return ",".join(out)


_EVERY_UNITS = {"d": DAY, "h": HOUR, "m": 60, "s": 1}
_EVERY_RE = re.compile(r"(?:[0-9]+[dhms])+")
_EVERY_PART_RE = re.compile(r"([0-9]+)([dhms])")
_EVERY_MAX_S = 100 * 366 * DAY


def _parse_every(arg: str) -> int:
    """``@every`` duration (Go style: 1h30m, 90s, 2d) in whole seconds."""
    text = arg.strip().lower()
    if not text:
        raise ValidationError("spec", "@every needs a duration, e.g. '@every 5m'")
    if not _EVERY_RE.fullmatch(text):
        if re.search(r"[0-9]\.[0-9]|[0-9](ms|us|µs|ns)\b", text):
            raise ValidationError("spec", f"@every duration '{arg}' must be a whole number of seconds")
        raise ValidationError(
            "spec", f"@every duration '{arg}' is not valid; use whole numbers with units d, h, m, s, e.g. 30s, 5m, 1h30m, 1d"
        )
    total = sum(int(n) * _EVERY_UNITS[u] for n, u in _EVERY_PART_RE.findall(text))
    if total < 1:
        raise ValidationError("spec", f"@every duration '{arg}' must be at least 1s")
    if total > _EVERY_MAX_S:
        raise ValidationError("spec", f"@every duration '{arg}' must be at most 100 years")
    return total


# croniter numbers the fields minute, hour, day-of-month, month, day-of-week,
# second, whatever order they are written in; H hashing is seeded by that
# number, so resolving H ourselves must use it too.
_CRONITER_INDEX = {False: (0, 1, 2, 3, 4), True: (5, 0, 1, 2, 3, 4)}
# croniter's own H expansion, so a hashed time is the one croniter itself
# would pick for that job name (the instance only supplies field ranges).
_HASHER = HashExpander(croniter("* * * * *", 0))


class _FieldError(Exception):
    """croniter rejected the field at `position` (in the order written)."""

    def __init__(self, position: int, cause: Exception) -> None:
        super().__init__(position, cause)
        self.position = position
        self.cause = cause


class _NeverFiresError(Exception):
    """No calendar date matches the day fields."""


@functools.lru_cache(maxsize=4096)
def _field_values(position: int, seconds: bool, text: str) -> tuple[int | str, ...]:
    """croniter's expansion of one field, checked alone ('*' in the others).

    croniter checks each field on its own (the one combined check, nth
    weekdays mixed with plain ones, stays within day-of-week), so a spec is
    valid exactly when each of its fields is. Checking them one at a time lets
    100,000 distinct specs share a few hundred cached checks instead of each
    building a croniter (~0.2 ms).
    """
    trial = ["*"] * (6 if seconds else 5)
    trial[position] = text
    try:
        expanded, _ = croniter.expand(" ".join(trial), second_at_beginning=seconds)
    except (CroniterError, ValueError) as exc:
        raise _FieldError(position, exc) from exc
    return tuple(expanded[_CRONITER_INDEX[seconds][position]])


@functools.lru_cache(maxsize=4096)
def _nth_weekdays(text: str) -> tuple[tuple[int, frozenset[int | str]], ...]:
    """croniter's ``n#k`` / ``nL`` entries of a (valid) day-of-week field:
    (weekday, {k or 'l', ...}) pairs."""
    nth = croniter.expand(f"* * * * {text}")[1]
    return tuple((weekday, frozenset[int | str](ks)) for weekday, ks in nth.items())


@functools.lru_cache(maxsize=4096)
def _day_rule(dom: str, dow: str, seconds: bool) -> DayRule:
    """The day fields' rule; shared by every spec with the same two fields."""
    dom_at, dow_at = (3, 5) if seconds else (2, 4)  # as written; their expansions are cached already
    return DayRule(dom, _field_values(dom_at, seconds, dom), dow, _field_values(dow_at, seconds, dow), _nth_weekdays(dow))


@functools.lru_cache(maxsize=4096)
def _sorted_values(values: tuple[int | str, ...], size: int) -> tuple[int, ...]:
    """A field's values as a sorted tuple; cached, so rules share the tuples."""
    return tuple(range(size)) if "*" in values else tuple(sorted(int(v) for v in values))


class Rule:
    """The zone-independent part of a cron schedule: the fields (H resolved)
    as a wall-clock :class:`Calendar`, and whether the job is fixed-time.

    Immutable; shared by every schedule with the same resolved fields.
    """

    __slots__ = ("calendar", "fixed")

    def __init__(self, fields: tuple[str, ...], values: list[tuple[int | str, ...]]) -> None:
        with_seconds = len(fields) == 6
        second, minute, hour = values[:3] if with_seconds else ((0,), values[0], values[1])
        dom, dow = fields[-3], fields[-1]
        self.calendar = Calendar(
            _sorted_values(second, 60),
            _sorted_values(minute, 60),
            _sorted_values(hour, 24),
            values[-2],
            _day_rule(dom, dow, with_seconds),
        )
        # Vixie cron's rule: a job is "fixed-time" if neither the minute nor
        # the hour field starts with '*' (the seconds field does not count; a
        # resolved H never starts with '*', as H itself did not).
        minute_text, hour_text = fields[-5], fields[-4]
        self.fixed = not minute_text.startswith("*") and not hour_text.startswith("*")


@functools.lru_cache(maxsize=65536)
def _rule(fields: tuple[str, ...]) -> Rule:
    """Check resolved cron fields (as croniter gets them); raises _FieldError or _NeverFiresError."""
    seconds = len(fields) == 6
    values = [_field_values(i, seconds, text) for i, text in enumerate(fields)]
    rule = Rule(fields, values)
    # A spec no date matches (Feb 30, a 5th Monday in a month list that
    # never has one, ...) is an error, not a job that silently never runs.
    if not rule.calendar.fires_on_some_date():
        raise _NeverFiresError
    return rule


class Template:
    """A spec as far as it can be checked without a job name; cached by its text.

    For cron specs, `expr_fields` are the fields as croniter gets them, with
    the positions in `hashed` still to be resolved with the job's name.
    """

    __slots__ = ("every", "expr_fields", "fields", "hashed", "spec")

    def __init__(self, spec: str, fields: list[str], expr_fields: list[str], hashed: list[int], every: int | None = None) -> None:
        self.spec = spec
        self.fields = tuple(fields)
        # Usually nothing needed rewriting: one tuple for both then.
        self.expr_fields = self.fields if expr_fields == fields else tuple(expr_fields)
        self.hashed = tuple(hashed)
        self.every = every


@functools.lru_cache(maxsize=65536)
def spec_template(spec: str) -> Template:
    text = " ".join(spec.split())
    if text == spec:
        text = spec  # keep the caller's string (often shared by many jobs), not an equal copy
    if not text:
        raise ValidationError("spec", "is empty")

    if text.startswith("@"):
        macro, _, arg = text.partition(" ")
        macro = macro.lower()
        if macro == "@every":
            return Template(f"@every {arg.lower()}", [], [], [], every=_parse_every(arg))
        if macro not in _MACROS:
            raise ValidationError("spec", f"unknown macro {macro}")
        if arg:
            raise ValidationError("spec", f"macro {macro} takes no arguments, got '{arg}'")
        fields = _MACROS[macro].split(" ")
        normalised = macro
    else:
        fields = text.split(" ")
        normalised = text
        if len(fields) not in (5, 6):
            raise ValidationError("spec", f"expected 5 fields (or 6 with seconds first), got {len(fields)}")

    names = _FIELDS_6 if len(fields) == 6 else _FIELDS_5
    expr_fields = []
    hashed = []
    for position, ((field, lo, hi), value) in enumerate(zip(names, fields, strict=True)):
        expr, is_hashed = _template_field(field, lo, hi, value)
        if is_hashed:
            hashed.append(position)
        expr_fields.append(expr)
    return Template(normalised, fields, expr_fields, hashed)


@functools.lru_cache(maxsize=65536)
def _template_field(field: str, lo: int, hi: int, value: str) -> tuple[str, bool]:
    """One written field as croniter gets it, and whether it is an H still to
    be resolved with the job's name. Cached: specs differ, their fields
    mostly repeat ("*", "MON-FRI", a minute), and a dispatcher loading
    100,000 jobs checks tens of thousands of distinct specs. (A bad field
    raises every time: lru_cache keeps no exceptions.)"""
    if _HASH_RE.fullmatch(value):
        # croniter hashes a bare H in day-of-month over 1-31, which
        # would skip short months (or never fire in February); keep it
        # to days every month has. (Lower case: how croniter reads it.)
        return ("h(1-28)" if field == "day-of-month" and value.lower() == "h" else value.lower()), True
    if _RANDOM_RE.fullmatch(value):
        raise ValidationError(
            "spec",
            f"field '{field}': R (random) is not supported; every dispatcher must compute the same fire times, use H",
        )
    if "h" in value.lower().replace("thu", ""):
        raise ValidationError("spec", f"field '{field}': H must be the whole field (H, H/n, H(a-b) or H(a-b)/n), got '{value}'")
    return _rewrite_field(field, value, lo, hi), False


def _field_error(template: Template, position: int, cause: Exception) -> ValidationError:
    names = _FIELDS_6 if len(template.fields) == 6 else _FIELDS_5
    value = template.fields[position]
    return ValidationError("spec", f"field '{names[position][0]}' value '{value}' is not valid ({cause})")


@functools.lru_cache(maxsize=4096)
def _hash_match(expr: str) -> re.Match[str] | None:
    """croniter's own parse of an H field, which its HashExpander.expand
    otherwise repeats for every job: kept per field text and handed back."""
    return _HASHER.match("", 0, expr)


def hash_fields(template: Template, hash_key: str) -> tuple[str, ...]:
    """The template's fields with each H replaced by the value croniter picks for `hash_key`."""
    key = hash_key.encode()
    index = _CRONITER_INDEX[len(template.fields) == 6]
    fields = list(template.expr_fields)
    for position in template.hashed:
        expr = fields[position]
        try:
            fields[position] = _HASHER.expand("", index[position], expr, hash_id=key, match=_hash_match(expr))
        except (CroniterError, ValueError) as exc:
            raise _field_error(template, position, exc) from exc
    return tuple(fields)


def checked_rule(template: Template, fields: tuple[str, ...]) -> Rule:
    try:
        return _rule(fields)
    except _FieldError as err:
        raise _field_error(template, err.position, err.cause) from err.cause
    except _NeverFiresError:
        raise ValidationError("spec", f"never fires: no date matches '{template.spec}'") from None


_ZONE_PREFIX_RE = re.compile(r"\s*(?:CRON_)?TZ=(\S*)(.*)", re.DOTALL)


def zone_prefix(spec: str, timezone: str) -> tuple[str, str]:
    """Split ``CRON_TZ=Zone rest`` (robfig/cron and dkron; ``TZ=`` too) into
    the rest and the zone it runs in.

    The spec's zone applies. A job whose own time zone is another zone than
    the default UTC is ambiguous and refused, rather than one of the two
    silently winning; the same zone in both places is fine.
    """
    match = _ZONE_PREFIX_RE.fullmatch(spec)
    if match is None:
        raise ValidationError("spec", "CRON_TZ=Zone must come first, e.g. 'CRON_TZ=Asia/Tokyo 0 9 * * *'")
    name, rest = match.groups()
    if not name:
        raise ValidationError("spec", "CRON_TZ= needs a time zone, e.g. 'CRON_TZ=Asia/Tokyo 0 9 * * *'")
    try:
        zone = validate_timezone(name)
    except ValidationError as exc:
        raise ValidationError("spec", f"CRON_TZ: {exc.message}") from None
    if not rest.strip():
        raise ValidationError("spec", f"needs a schedule after CRON_TZ={name}")
    if timezone not in ("UTC", zone):
        raise ValidationError(
            "spec", f"CRON_TZ={zone} contradicts the job's time zone {timezone}; set the zone in one place only"
        )
    return rest, zone
