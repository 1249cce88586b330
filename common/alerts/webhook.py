"""Alerts by webhook: one JSON POST in the shape the receiving service expects.

Formats (``webhook_format``):

* ``json``: ``{"subject", "text", "severity", "fields"}`` for your own receiver;
* ``slack``: ``{"text": ...}`` (an incoming webhook; &, < and > escaped);
* ``dingtalk``: ``{"msgtype": "text", "text": {"content": ...}}`` (a custom
  robot; its keyword check passes with the keyword "crontrio");
* ``wecom``: ``{"msgtype": "text", "text": {"content": ...}}`` (content cut
  to WeCom's 2048 bytes);
* ``feishu``: ``{"msg_type": "text", "content": {"text": ...}}``.

A response other than 2xx is a failure; DingTalk, WeCom and Feishu answer
200 with an error code in the body, so for them a non-zero ``errcode`` /
``code`` / ``StatusCode`` is a failure too.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from crontrio.common.alerts.base import WEBHOOK, ChannelError, PermanentChannelError, cap_utf8, describe_response
from crontrio.common.alerts.message import Alert
from crontrio.common.config import AlertConfig

FORMATS = ("json", "slack", "dingtalk", "wecom", "feishu")
# Text limits of the chat services, with room for the JSON around it.
_CONTENT_MAX_BYTES = {"slack": 38000, "dingtalk": 19000, "wecom": 2048, "feishu": 18000}
_ERRCODE_FORMATS = ("dingtalk", "wecom", "feishu")


def chat_text(alert: Alert) -> str:
    """Subject, blank line, body: the plain text chat formats carry."""
    return f"{alert.subject}\n\n{alert.text.rstrip()}"


def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(alert: Alert, fmt: str) -> dict[str, Any]:
    """The JSON document posted for `alert` in format `fmt`."""
    if fmt == "json":
        return {"subject": alert.subject, "text": alert.text, "severity": alert.severity, "fields": dict(alert.fields)}
    if fmt not in _CONTENT_MAX_BYTES:
        raise PermanentChannelError(f"unknown webhook_format {fmt!r} (known: {', '.join(FORMATS)})")
    text = chat_text(alert)
    if fmt == "slack":
        text = slack_escape(text)
    text = cap_utf8(text, _CONTENT_MAX_BYTES[fmt])
    if fmt == "slack":
        return {"text": text}
    if fmt in ("dingtalk", "wecom"):
        return {"msgtype": "text", "text": {"content": text}}
    return {"msg_type": "text", "content": {"text": text}}


def body_error(fmt: str, response: httpx.Response) -> str | None:
    """The error a 200 response reports in its body (DingTalk, WeCom, Feishu), or None."""
    if fmt not in _ERRCODE_FORMATS:
        return None
    try:
        doc = response.json()
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    for code_key, msg_key in (("errcode", "errmsg"), ("code", "msg"), ("StatusCode", "StatusMessage")):
        code = doc.get(code_key)
        if code not in (None, 0, "0"):
            return f"{code_key} {code}: {doc.get(msg_key, '')}"
    return None


class WebhookChannel:
    name = WEBHOOK

    def __init__(self, cfg: AlertConfig, *, timeout: float = 10.0, client: httpx.AsyncClient | None = None) -> None:
        if cfg.webhook_format not in FORMATS:
            raise ValueError(f"webhook_format must be one of {', '.join(FORMATS)}, got {cfg.webhook_format!r}")
        self.cfg = cfg
        self.format = cfg.webhook_format
        self.timeout = timeout
        self._client = client
        self._own_client = client is None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self._client

    async def send(self, alert: Alert, recipients: list[str]) -> None:
        """POST the alert; `recipients` is ignored (the webhook URL is the destination)."""
        body = json.dumps(payload(alert, self.format), ensure_ascii=False).encode("utf-8")
        url = self.cfg.webhook_url
        try:
            response = await self._http().post(url, content=body, headers={"Content-Type": "application/json; charset=utf-8"})
        except httpx.HTTPError as exc:
            raise ChannelError(f"webhook ({self.format}) {_safe_url(url)}: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise ChannelError(f"webhook ({self.format}): {describe_response(response.status_code, response.text)}")
        error = body_error(self.format, response)
        if error:
            raise ChannelError(f"webhook ({self.format}) answered {error}")

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None


def _safe_url(url: str) -> str:
    """The URL without its query: DingTalk and WeCom put the access token there."""
    return url.split("?", 1)[0]
