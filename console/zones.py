"""Which zone times are shown in: the job's (default), the viewer's local
zone, or UTC, switched by the viewer (a cookie). Every time shown is
labelled with its zone.

The browser's zone reaches the server in a cookie that console.js sets from
Intl (a preference, not a secret); without it "local" means UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from crontrio.console.text import at

MODE_COOKIE = "crontrio_tz"
LOCAL_COOKIE = "crontrio_localtz"
MODES = ("job", "local", "utc")


def viewer_zone(request: web.Request) -> str:
    name = unquote(request.cookies.get(LOCAL_COOKIE, ""))
    if not name or len(name) > 64:
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return name


def mode_of(request: web.Request) -> str:
    mode = request.cookies.get(MODE_COOKIE, "job")
    return mode if mode in MODES else "job"


def formatters(request: web.Request) -> dict[str, Callable[..., str] | str]:
    """Template helpers: at(ms, job_zone) in the chosen zone; also(ms, job_zone)
    the same instant in a second zone worth showing ("" when none);
    at_in(ms, zone) in exactly that zone."""
    mode, local = mode_of(request), viewer_zone(request)

    def shown(tz: str) -> str:
        return {"job": tz or "UTC", "local": local, "utc": "UTC"}[mode]

    def at_shown(ms: int, tz: str = "UTC") -> str:
        return at(ms, shown(tz))

    def also(ms: int, tz: str = "UTC") -> str:
        first = shown(tz)
        second = (tz or "UTC") if first != (tz or "UTC") else "UTC"
        return at(ms, second) if ms and second != first else ""

    return {"at": at_shown, "also": also, "at_in": at, "tz_mode": mode, "viewer_zone": local}


async def set_mode(request: web.Request) -> web.StreamResponse:
    from crontrio.console.pages import safe_next

    mode = request.query.get("to", "")
    response = web.HTTPFound(safe_next(request.query.get("next", "/")))
    if mode in MODES:
        response.set_cookie(MODE_COOKIE, mode, max_age=365 * 86400, path="/", samesite="Strict", httponly=True)
    raise response
