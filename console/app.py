"""The console's aiohttp application: pages, the JSON API, static files.

``build_app`` is what the monitor mounts on its HTTP port and what
``python -m crontrio.console`` serves alone.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import zoneinfo
from pathlib import Path
from urllib.parse import quote

import jinja2
from aiohttp import web

from crontrio.common.config import Config
from crontrio.common.tls import admin_tls
from crontrio.console import api, bulk, jobpages, jobslist, listpages, pages
from crontrio.console.gateway import Gateway
from crontrio.console.secrets_file import load_or_create_secret
from crontrio.console.security import security_headers
from crontrio.console.session import Signer
from crontrio.console.state import STATE, ConsoleState

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent


def _static_version() -> str:
    """Changes whenever a static file does, so browsers never use a stale one."""
    digest = hashlib.sha256()
    for path in sorted((HERE / "static").iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


@functools.cache
def _zones() -> list[str]:
    """IANA zone names, for the job form's suggestions."""
    return sorted(z for z in zoneinfo.available_timezones() if "/" in z or z == "UTC")


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value is text unless a template says otherwise (none does)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["urlq"] = lambda value: quote(str(value), safe="")
    version = _static_version()
    env.globals["static"] = lambda name: f"/static/{name}?v={version}"
    env.globals["zones"] = _zones
    return env


def build_app(cfg: Config, gateway: Gateway | None = None) -> web.Application:
    """The console as an aiohttp app (its gateway is closed on app cleanup).

    Dispatchers: [console] dispatchers when given; else, with etcd, the live
    ones registered there (so it keeps working when one dies); else
    [dispatcher] listen."""
    watcher = None
    if gateway is not None:
        gw = gateway
    elif cfg.etcd.endpoints and not cfg.console.dispatchers:
        from crontrio.common.registry.dispatcher_watch import DispatcherWatcher

        watcher = DispatcherWatcher(cfg.etcd.endpoints, cfg.etcd.prefix)
        found = watcher
        gw = Gateway(lambda: [d.address for d in found.live()], admin_tls(cfg.tls))
    else:
        gw = Gateway(cfg.console_dispatchers, admin_tls(cfg.tls))
    state = ConsoleState(
        gateway=gw,
        signer=Signer(load_or_create_secret(cfg.console.secret_file)),
        read_only=cfg.console.read_only,
        templates=_templates(),
    )
    app = web.Application(middlewares=[security_headers, api.api_errors])
    app[STATE] = state
    jobpages.add_routes(app)  # before pages: /jobs/{name}/edit etc.
    bulk.add_routes(app)
    jobslist.add_routes(app)
    listpages.add_routes(app)
    pages.add_routes(app)
    api.add_routes(app)
    app.router.add_static("/static/", HERE / "static")

    async def close_gateway(_: web.Application) -> None:
        await gw.close()
        if watcher is not None:
            await watcher.close()

    if watcher is not None:
        discovery = watcher

        async def start_watcher(_: web.Application) -> None:
            await discovery.start()

        app.on_startup.append(start_watcher)
    app.on_cleanup.append(close_gateway)
    return app
