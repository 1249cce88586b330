"""Alerts by SMS through an HTTP gateway: one request per phone number.

The request is built from ``sms_body_template`` with the placeholders
{phone}, {message}, {job}, {status} and {run_id}; {message} is the alert's
one-line subject. How values are escaped depends on the template:

* a template that starts with ``{`` or ``[`` is JSON: values are JSON-escaped
  (a quote or newline in a job's output cannot break the body) and the
  rendered body must parse as JSON;
* any other template is a form (``to={phone}&text={message}``): values are
  URL-encoded.

``sms_method = POST`` sends the rendered body (Content-Type application/json
or application/x-www-form-urlencoded, unless ``sms_headers`` sets one).
``sms_method = GET`` sends no body: a JSON template must render to an object,
whose members become the query parameters; a form template is appended to the
URL as the query string. Placeholders in ``sms_url`` itself are substituted
URL-encoded as well. Any response other than 2xx is a failure.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable

import httpx

from crontrio.common.alerts.base import SMS, ChannelError, PermanentChannelError, describe_response
from crontrio.common.alerts.message import Alert
from crontrio.common.config import AlertConfig

PLACEHOLDERS = ("phone", "message", "job", "status", "run_id")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
MESSAGE_MAX_CHARS = 480


def parse_headers(spec: str) -> dict[str, str]:
    """ "Name: value; Name2: value2" -> {"Name": "value", "Name2": "value2"}."""
    headers: dict[str, str] = {}
    for part in spec.split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"sms_headers: expected 'Name: value', got {part.strip()!r}")
        headers[name.strip()] = value.strip()
    return headers


def is_json_template(template: str) -> bool:
    return template.lstrip().startswith(("{", "["))


def _json_escape(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _url_escape(value: str) -> str:
    return urllib.parse.quote_plus(value, safe="")


def render(template: str, values: dict[str, str], escape: Callable[[str], str]) -> str:
    """Substitute the known placeholders, escaped; everything else (JSON braces included) stays as written."""
    return _PLACEHOLDER.sub(lambda m: escape(values.get(m.group(1), "")), template)


def sms_values(alert: Alert, phone: str) -> dict[str, str]:
    message = alert.subject if len(alert.subject) <= MESSAGE_MAX_CHARS else alert.subject[: MESSAGE_MAX_CHARS - 1] + "…"
    return {
        "phone": phone,
        "message": message,
        "job": alert.fields.get("job", ""),
        "status": alert.fields.get("status", ""),
        "run_id": alert.fields.get("run_id", ""),
    }


class SmsChannel:
    name = SMS

    def __init__(self, cfg: AlertConfig, *, timeout: float = 10.0, client: httpx.AsyncClient | None = None) -> None:
        self.cfg = cfg
        self.method = cfg.sms_method.upper()
        if self.method not in ("GET", "POST"):
            raise ValueError(f"sms_method must be GET or POST, got {cfg.sms_method!r}")
        self.headers = parse_headers(cfg.sms_headers)
        self.json_template = is_json_template(cfg.sms_body_template)
        self.timeout = timeout
        self._client = client
        self._own_client = client is None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self._client

    def build_request(self, alert: Alert, phone: str) -> httpx.Request:
        """The gateway request for one phone number (exposed for tests and `cronctl` dry runs)."""
        values = sms_values(alert, phone)
        url = render(self.cfg.sms_url, values, _url_escape)
        escape = _json_escape if self.json_template else _url_escape
        body = render(self.cfg.sms_body_template, values, escape)
        headers = dict(self.headers)
        if self.json_template:
            try:
                parsed = json.loads(body)
            except ValueError as exc:
                raise PermanentChannelError(f"sms_body_template does not render to valid JSON: {exc}") from exc
        if self.method == "GET":
            if self.json_template:
                if not isinstance(parsed, dict):
                    raise PermanentChannelError("sms_body_template: with sms_method GET a JSON template must be an object")
                params = {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in parsed.items()}
                query = urllib.parse.urlencode(params)
            else:
                query = body.strip().lstrip("?&")
            if query:
                url = f"{url}{'&' if '?' in url else '?'}{query}"
            return httpx.Request("GET", url, headers=headers)
        if not any(h.lower() == "content-type" for h in headers):
            headers["Content-Type"] = (
                "application/json; charset=utf-8" if self.json_template else "application/x-www-form-urlencoded"
            )
        return httpx.Request("POST", url, headers=headers, content=body.encode("utf-8"))

    async def send(self, alert: Alert, recipients: list[str]) -> None:
        if not recipients:
            raise PermanentChannelError("no phone numbers")
        for phone in recipients:
            request = self.build_request(alert, phone)
            try:
                response = await self._http().send(request)
            except httpx.HTTPError as exc:
                raise ChannelError(f"SMS gateway {self.method} {_safe_url(request.url)}: {type(exc).__name__}: {exc}") from exc
            if not response.is_success:
                raise ChannelError(f"SMS gateway for {phone}: {describe_response(response.status_code, response.text)}")

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None


def _safe_url(url: httpx.URL) -> str:
    """The URL without its query (which may carry an API key) for log lines."""
    return str(url.copy_with(query=None, fragment=None))
