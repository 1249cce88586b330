"""What every console handler needs, kept on the aiohttp app."""

from __future__ import annotations

from dataclasses import dataclass

import jinja2
from aiohttp import web

from crontrio.console.gateway import Gateway
from crontrio.console.session import Signer


@dataclass
class ConsoleState:
    gateway: Gateway
    signer: Signer
    read_only: bool
    templates: jinja2.Environment


STATE = web.AppKey("console_state", ConsoleState)


def state_of(request: web.Request) -> ConsoleState:
    return request.app[STATE]
