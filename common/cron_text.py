"""A cron spec in plain words, in English or Simplified Chinese.

``describe("30 2 * * *")`` is "at 02:30 every day"; ``describe("0 * * * 1-5")``
is "at minute 0 past every hour on Monday to Friday". It covers what
common/cron.py accepts: 5 or 6 fields (seconds first), month and day names,
``*``, ``?``, steps, ranges, lists, ``L``, ``L-n``, ``nL``, ``n#k``, the macros
and ``@every``. A form it cannot phrase (``H``, ``W``, odd combinations) comes
back as the spec itself: a reading is only shown when it is right.

Pure text work, no validation (common/cron_spec.py decides what is valid); shared by
the console and, later, cronctl.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LANGUAGES", "describe"]

LANGUAGES = ("en", "zh-CN")
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_EN_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_EN_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_ZH_DAYS = ["周日", "周一", "周二", "周三", "周四", "周五", "周六"]
_EN_ORDINALS = ["", "first", "second", "third", "fourth", "fifth"]
_EVERY_UNITS = {"d": ("day", "天"), "h": ("hour", "小时"), "m": ("minute", "分钟"), "s": ("second", "秒")}


class _UnphrasableError(Exception):
    """A form this module does not put into words (the raw spec is shown)."""


@dataclass(frozen=True)
class _Atom:
    """One comma-separated part of a field: kind is value, range, step, any,
    last (L / L-n / nL), nth (n#k)."""

    kind: str
    a: int = 0
    b: int = 0
    step: int = 0


def _number(text: str, names: list[str] | None, lo: int, hi: int) -> int:
    low = text.lower()
    if names and low in names:
        return names.index(low) + (1 if names is _MONTHS else 0)
    if not text.isdigit():
        raise _UnphrasableError(text)
    value = int(text)
    if names is _DAYS and value == 7:
        value = 0  # Sunday twice
    if not lo <= value <= hi:
        raise _UnphrasableError(text)
    return value


def _atoms(text: str, lo: int, hi: int, names: list[str] | None = None, day_field: str = "") -> list[_Atom]:
    atoms = []
    for part in text.split(","):
        low = part.lower()
        if day_field == "dom" and (m := re.fullmatch(r"l(?:-(\d+))?", low)):
            atoms.append(_Atom("last", int(m.group(1) or 0)))
        elif day_field == "dow" and (m := re.fullmatch(r"(\w+)l", low)):
            atoms.append(_Atom("last", _number(m.group(1), names, lo, hi)))
        elif day_field == "dow" and (m := re.fullmatch(r"(\w+)#([1-5])", low)):
            atoms.append(_Atom("nth", _number(m.group(1), names, lo, hi), int(m.group(2))))
        else:
            base, _, step = part.partition("/")
            if (step and not step.isdigit()) or step == "0":
                raise _UnphrasableError(part)
            if base in ("*", "?"):
                atoms.append(_Atom("step", lo, hi, int(step)) if step and step != "1" else _Atom("any"))
            elif "-" in base:
                first, _, last = base.partition("-")
                a, b = _number(first, names, lo, hi), _number(last, names, lo, hi)
                if b < a:
                    raise _UnphrasableError(part)
                atoms.append(_Atom("step", a, b, int(step)) if step else _Atom("range", a, b))
            elif step:
                atoms.append(_Atom("step", _number(base, names, lo, hi), hi, int(step)))
            else:
                atoms.append(_Atom("value", _number(base, names, lo, hi)))
    if len(atoms) > 1 and any(a.kind == "any" for a in atoms):
        raise _UnphrasableError(text)
    return atoms


def _is_any(atoms: list[_Atom]) -> bool:
    return atoms == [_Atom("any")]


def _single(atoms: list[_Atom]) -> int | None:
    return atoms[0].a if len(atoms) == 1 and atoms[0].kind == "value" else None


def _every_text(arg: str, lang: str) -> str:
    parts = re.findall(r"(\d+)([dhms])", arg.lower())
    if not parts or "".join(n + u for n, u in parts) != arg.lower():
        raise _UnphrasableError(arg)
    if lang == "zh-CN":
        return "每 " + " ".join(f"{int(n)} {_EVERY_UNITS[u][1]}" for n, u in parts)
    words = [f"{int(n)} {_EVERY_UNITS[u][0]}{'' if int(n) == 1 else 's'}" for n, u in parts]
    return "every " + " ".join(words) if len(words) > 1 or int(parts[0][0]) != 1 else "every " + _EVERY_UNITS[parts[0][1]][0]


def describe(spec: str, lang: str = "en") -> str:
    """The spec in words in `lang` ("en" or "zh-CN"); the spec itself when it
    cannot be phrased (or is not valid)."""
    text = " ".join(spec.split())
    try:
        if text.lower().startswith("@every "):
            return _every_text(text.split(" ", 1)[1], lang)
        fields = _MACROS.get(text.lower(), text).split(" ")
        if len(fields) == 5:
            fields = ["0", *fields]
        if len(fields) != 6:
            raise _UnphrasableError(text)
        sec, minute, hour = (_atoms(f, 0, 59 if i < 2 else 23) for i, f in enumerate(fields[:3]))
        dom = _atoms(fields[3], 1, 31, day_field="dom")
        month = _atoms(fields[4], 1, 12, _MONTHS)
        dow = _atoms(fields[5], 0, 7, _DAYS, day_field="dow")
        words = _ZH if lang == "zh-CN" else _EN
        return words.sentence(sec, minute, hour, dom, month, dow)
    except _UnphrasableError:
        return spec


# ----------------------------------------------------------------- languages


class _Words:
    """One language's phrasing: subclasses give the words, this the shape."""

    def join(self, items: list[str]) -> str:
        raise NotImplementedError

    def field(self, atoms: list[_Atom], unit: str, name: Callable[[int], str]) -> str:
        raise NotImplementedError

    def sentence(
        self, sec: list[_Atom], minute: list[_Atom], hour: list[_Atom], dom: list[_Atom], month: list[_Atom], dow: list[_Atom]
    ) -> str:
        raise NotImplementedError


def _clock(h: int, m: int, s: int) -> str:
    return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


def _times(sec: list[_Atom], minute: list[_Atom], hour: list[_Atom]) -> list[str] | None:
    """Clock times when every time field is a list of plain values (few of them)."""
    if not all(all(a.kind == "value" for a in f) for f in (sec, minute, hour)):
        return None
    if len(sec) * len(minute) * len(hour) > 4:
        return None
    return [_clock(h.a, m.a, s.a) for h in hour for m in minute for s in sec]


class _English(_Words):
    def join(self, items: list[str]) -> str:
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

    def field(self, atoms: list[_Atom], unit: str, name: Callable[[int], str] = str) -> str:
        """E.g. "every hour", "every 2 hours from 9 to 17", "hours 9 and 12"."""
        parts, values = [], []
        for a in atoms:
            if a.kind == "any":
                parts.append(f"every {unit}")
            elif a.kind == "value":
                values.append(name(a.a))
            elif a.kind == "range":
                parts.append(f"every {unit} from {name(a.a)} to {name(a.b)}")
            elif a.kind == "step":
                first = f"every {a.step} {unit}s" if a.step > 1 else f"every {unit}"
                parts.append(first if (a.a, a.b) == _FULL[unit] else f"{first} from {name(a.a)} to {name(a.b)}")
            else:
                raise _UnphrasableError(unit)
        if values:
            parts.insert(0, f"{unit}{'s' if len(values) > 1 else ''} {self.join(values)}")
        return self.join(parts)

    def days(self, dom: list[_Atom], month: list[_Atom], dow: list[_Atom]) -> str:
        phrases = []
        if not _is_any(dom) and not (len(dom) == 1 and dom[0].kind == "step"):
            bits = []
            for a in dom:
                if a.kind == "last":
                    bits.append("the last day" if not a.a else f"{a.a} days before the last day")
                elif a.kind == "value":
                    bits.append(f"day {a.a}")
                elif a.kind == "range":
                    bits.append(f"days {a.a} to {a.b}")
                else:
                    raise _UnphrasableError("dom")
            phrases.append("on " + self.join(bits) + " of the month")
        if len(dom) == 1 and dom[0].kind == "step" and (dom[0].a, dom[0].b) == (1, 31):
            phrases = [f"every {dom[0].step} days" if dom[0].step > 1 else "every day"]
        if not _is_any(dow):
            bits = []
            for a in dow:
                if a.kind == "value":
                    bits.append(_EN_DAYS[a.a])
                elif a.kind == "range":
                    bits.append(f"{_EN_DAYS[a.a]} to {_EN_DAYS[a.b]}")
                elif a.kind == "last":
                    bits.append(f"the last {_EN_DAYS[a.a]} of the month")
                elif a.kind == "nth":
                    bits.append(f"the {_EN_ORDINALS[a.b]} {_EN_DAYS[a.a]} of the month")
                else:
                    raise _UnphrasableError("dow")
            phrases.append("on " + self.join(bits))
        text = " or ".join(phrases) if phrases else "every day"
        if not _is_any(month):
            text += " " + _month_phrase(
                month, lambda n: _EN_MONTHS[n - 1], "in {}", "from {} to {}", "every {} months", self.join
            )
        return text

    def sentence(
        self, sec: list[_Atom], minute: list[_Atom], hour: list[_Atom], dom: list[_Atom], month: list[_Atom], dow: list[_Atom]
    ) -> str:
        times = _times(sec, minute, hour)
        every_day = _is_any(dom) and _is_any(dow) and _is_any(month)
        if times:
            return f"at {self.join(times)} {self.days(dom, month, dow)}"
        if _sub_minute(sec, minute, hour):
            when = "every minute" if _single(sec) == 0 else self.field(sec, "second")
            if sec[0].kind == "value" and sec[0].a:
                when = f"at {when} past every minute"
        elif _is_any(hour) and len(minute) == 1 and minute[0].kind == "step" and _single(sec) == 0:
            when = self.field(minute, "minute")  # every 15 minutes
        else:
            when = self._minutes(minute) + " past " + self.field(hour, "hour")
            if _single(sec) != 0:
                when = ("at " if sec[0].kind == "value" else "") + f"{self.field(sec, 'second')} of {when.removeprefix('at ')}"
        return when if every_day else f"{when} {self.days(dom, month, dow)}"

    def _minutes(self, minute: list[_Atom]) -> str:
        text = self.field(minute, "minute")
        return "at " + text if minute[0].kind == "value" else text


class _Chinese(_Words):
    def join(self, items: list[str]) -> str:
        return "、".join(items)

    def field(self, atoms: list[_Atom], unit: str, name: Callable[[int], str] = str) -> str:
        zh = {"second": "秒", "minute": "分钟", "hour": "小时", "month": "个月"}[unit]
        at = {"second": "第 {} 秒", "minute": "第 {} 分钟", "hour": "{} 点", "month": "{}"}[unit]
        parts, values = [], []
        for a in atoms:
            if a.kind == "any":
                parts.append(f"每{zh.removeprefix('个')}")
            elif a.kind == "value":
                values.append(str(name(a.a)))
            elif a.kind == "range":
                parts.append(f"{at.format(name(a.a))}至 {at.format(name(a.b))}每{zh.removeprefix('个')}")
            elif a.kind == "step":
                every = f"每 {a.step} {zh}" if a.step > 1 else f"每{zh.removeprefix('个')}"
                full = (a.a, a.b) == _FULL[unit]
                parts.append(every if full else f"{at.format(name(a.a))}至 {at.format(name(a.b))}{every}")
            else:
                raise _UnphrasableError(unit)
        if values:
            parts.insert(0, at.format("、".join(values)))
        return self.join(parts)

    def days(self, dom: list[_Atom], month: list[_Atom], dow: list[_Atom]) -> str:
        phrases = []
        if not _is_any(dom) and not (len(dom) == 1 and dom[0].kind == "step"):
            bits = []
            for a in dom:
                if a.kind == "last":
                    bits.append("最后一天" if not a.a else f"最后一天前 {a.a} 天")
                elif a.kind == "value":
                    bits.append(f"{a.a} 日")
                elif a.kind == "range":
                    bits.append(f"{a.a} 日至 {a.b} 日")
                else:
                    raise _UnphrasableError("dom")
            joined = self.join(bits)
            prefix = "" if not _is_any(month) else "每月" if joined[0] > "~" else "每月 "
            phrases.append(prefix + joined)
        if len(dom) == 1 and dom[0].kind == "step" and (dom[0].a, dom[0].b) == (1, 31):
            phrases = [f"每 {dom[0].step} 天" if dom[0].step > 1 else "每天"]
        if not _is_any(dow):
            bits = []
            for a in dow:
                if a.kind == "value":
                    bits.append(_ZH_DAYS[a.a])
                elif a.kind == "range":
                    bits.append(f"{_ZH_DAYS[a.a]}至{_ZH_DAYS[a.b]}")
                elif a.kind == "last":
                    bits.append(f"每月最后一个{_ZH_DAYS[a.a]}")
                elif a.kind == "nth":
                    bits.append(f"每月第 {a.b} 个{_ZH_DAYS[a.a]}")
                else:
                    raise _UnphrasableError("dow")
            phrases.append(self.join(bits))
        text = "或".join(phrases) if phrases else "每天"
        if not _is_any(month):
            text = _month_phrase(month, lambda n: f"{n} 月", "{}", "{}至 {}", "每 {} 个月", self.join) + " " + text
        return text

    def sentence(
        self, sec: list[_Atom], minute: list[_Atom], hour: list[_Atom], dom: list[_Atom], month: list[_Atom], dow: list[_Atom]
    ) -> str:
        days = self.days(dom, month, dow)
        every_day = _is_any(dom) and _is_any(dow) and _is_any(month)
        times = _times(sec, minute, hour)
        if times:
            return f"{days} {self.join(times)}"
        if _sub_minute(sec, minute, hour):
            when = "每分钟" if _single(sec) == 0 else self.field(sec, "second")
            if sec[0].kind == "value" and sec[0].a:
                when = "每分钟的" + when
        elif _is_any(hour) and len(minute) == 1 and minute[0].kind == "step" and _single(sec) == 0:
            when = self.field(minute, "minute")
        else:
            when = self.field(hour, "hour") + "的" + self.field(minute, "minute")
            if _single(sec) != 0:
                when += "的" + self.field(sec, "second")
        return when if every_day else f"{days} {when}"


def _sub_minute(sec: list[_Atom], minute: list[_Atom], hour: list[_Atom]) -> bool:
    """Every minute or more often, all day: "every 10 seconds", "every minute"."""
    return (
        _is_any(hour)
        and _is_any(minute)
        and len(sec) == 1
        and sec[0].kind in ("any", "step", "value")
        and (sec[0].kind != "step" or (sec[0].a, sec[0].b) == (0, 59))
    )


def _month_phrase(
    month: list[_Atom], name: Callable[[int], str], values: str, span: str, every: str, join: Callable[[list[str]], str]
) -> str:
    if all(a.kind == "value" for a in month):
        return values.format(join([name(a.a) for a in month]))
    if len(month) == 1 and month[0].kind == "range":
        return span.format(name(month[0].a), name(month[0].b))
    if len(month) == 1 and month[0].kind == "step" and (month[0].a, month[0].b) == (1, 12):
        return every.format(month[0].step)
    raise _UnphrasableError("month")


_FULL = {"second": (0, 59), "minute": (0, 59), "hour": (0, 23), "month": (1, 12)}
_EN = _English()
_ZH = _Chinese()
