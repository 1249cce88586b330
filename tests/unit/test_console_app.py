"""The console app without a dispatcher: the OpenAPI document matches the
router, languages are chosen as documented, ANSI is stripped, cookies are
signed, the secret file is private."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from aiohttp import web

from crontrio.common.config import load_config
from crontrio.console.api import PREFIX
from crontrio.console.app import build_app
from crontrio.console.i18n import LANGUAGES, choose, translator
from crontrio.console.openapi import document
from crontrio.console.secrets_file import load_or_create_secret
from crontrio.console.session import Session, Signer
from crontrio.console.text import at, output_text


def _app(tmp_path: Path) -> web.Application:
    cfg = load_config(None, env={"CRONTRIO_CONSOLE_SECRET_FILE": str(tmp_path / "secret")})
    return build_app(cfg)


def _served_api_paths(app: web.Application) -> set[tuple[str, str]]:
    served = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path and path.startswith(PREFIX + "/") and route.method != "HEAD":
            served.add((route.method.lower(), path))
    return served


def test_openapi_documents_exactly_what_is_served(tmp_path: Path) -> None:
    doc = document()
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    served = _served_api_paths(_app(tmp_path))
    assert documented == served, {"documented only": documented - served, "served only": served - documented}
    for path in (
        "/api/v1/jobs",
        "/api/v1/jobs/{name}",
        "/api/v1/runs/{run_id}/kill",
        "/api/v1/jobs:validate",
        "/api/v1/spec/preview",
    ):
        assert path in doc["paths"]
    job = doc["components"]["schemas"]["Job"]["properties"]
    assert job["timeoutSeconds"] == {"type": "number"} and job["id"] == {"type": "string", "format": "int64"}
    assert job["env"]["type"] == "object" and job["after"]["type"] == "array"
    refs = str(doc).count("#/components/schemas/")
    assert refs and all(name in doc["components"]["schemas"] for name in ("Run", "Error", "ListJobsPage"))


def test_language_choice_and_catalogs() -> None:
    assert choose("zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert choose("en-US,en;q=0.9,zh;q=0.8") == "en"
    assert choose("fr-FR, zh-TW;q=0.5") == "zh-CN"
    assert choose("de") == "en" and choose("") == "en"
    assert choose("zh-CN", cookie="en") == "en"
    assert translator("zh-CN")("Jobs") == "任务" and translator("en")("Jobs") == "Jobs"
    assert translator("zh-CN")("untranslated text") == "untranslated text"
    assert set(LANGUAGES) == {"en", "zh-CN"}


def test_output_text_strips_ansi_and_controls_and_times_carry_their_zone() -> None:
    raw = b"\x1b[1;31mred\x1b[0m \x1b]0;title\x07<b>bold</b>\r\nbad \xff byte\x07\n"
    assert output_text(raw) == "red <b>bold</b>\nbad \ufffd byte\n"
    assert at(0) == "" and at(1_000, "Asia/Shanghai") == "1970-01-01 08:00:01 Asia/Shanghai"
    assert at(1_000) == "1970-01-01 00:00:01 UTC"


def test_signed_cookies_and_the_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "var" / "console-secret"
    key = load_or_create_secret(str(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and load_or_create_secret(str(path)) == key
    signer = Signer(key)
    session = Session("cts_abc", "ann", "viewer", 4_102_444_800_000)
    value = signer.session_cookie(session)
    assert signer.unsign("session", value) is not None
    assert Signer(b"another key 1234").unsign("session", value) is None
    body, _, mac = value.partition(".")
    assert signer.unsign("session", body[:-2] + "xx." + mac) is None
    assert signer.csrf_ok("cts_abc", signer.csrf_for("cts_abc")) and not signer.csrf_ok("cts_abd", signer.csrf_for("cts_abc"))
    assert not signer.csrf_ok("cts_abc", "")


def test_every_interface_text_has_a_chinese_translation() -> None:
    import re

    from crontrio.console import pages
    from crontrio.console.i18n import zh_cn

    texts: set[str] = set()
    for template in (Path(pages.__file__).parent / "templates").glob("*.html"):
        texts |= set(re.findall(r"""_\(\s*["']([^"']+)["']\s*\)""", template.read_text()))
    source = Path(pages.__file__).read_text()
    texts |= set(pages.FLASH.values())
    texts |= set(re.findall(r'message="([^"]+)"', source))
    texts |= set(re.findall(r'login_form\(request, "([^"]+)"', source))
    texts |= set(re.findall(r'_account_error\(request, session, "([^"]+)"', source))
    texts |= {"pending", "running", "succeeded", "failed", "timeout", "killed", "lost", "missed", "skipped", "queued"}
    assert len(texts) > 60
    missing = sorted(t for t in texts if t not in zh_cn.MESSAGES)
    assert not missing, f"no Chinese for: {missing}"


def test_console_settings_are_parsed_and_checked(tmp_path: Path) -> None:
    import pytest

    from crontrio.common.errors import ConfigError

    cfg = load_config(
        None, env={"CRONTRIO_CONSOLE_READ_ONLY": "yes", "CRONTRIO_CONSOLE_DISPATCHERS": "10.0.0.1:5920, 10.0.0.2:5920"}
    )
    assert cfg.console.read_only and cfg.console_dispatchers == ["10.0.0.1:5920", "10.0.0.2:5920"]
    assert cfg.console_listen == cfg.monitor.http_listen == "127.0.0.1:5923"
    assert load_config(None, env={}).console_dispatchers == ["127.0.0.1:5920"]
    with pytest.raises(ConfigError, match=r"console\.listen"):
        load_config(None, env={"CRONTRIO_CONSOLE_LISTEN": "nowhere"})
    with pytest.raises(ConfigError, match=r"dispatcher\.session_ttl_seconds"):
        load_config(None, env={"CRONTRIO_DISPATCHER_SESSION_TTL_SECONDS": "5"})


def test_cookies_are_secure_under_tls_and_strict_everywhere() -> None:
    import ssl

    from aiohttp.test_utils import make_mocked_request

    from crontrio.console.session import set_cookie

    for sslcontext, secure in ((None, False), (ssl.create_default_context(), True)):
        response = web.Response()
        set_cookie(response, make_mocked_request("GET", "/", sslcontext=sslcontext), "crontrio_session", "v", 60)
        cookie = response.cookies["crontrio_session"]
        assert bool(cookie["secure"]) is secure and cookie["httponly"] is True and cookie["samesite"] == "Strict"


def test_live_output_is_cut_only_between_characters_and_escapes() -> None:
    from crontrio.console.live import Splitter
    from crontrio.console.text import output_text

    raw = "é \x1b[31mred\x1b[0m 中\n".encode()
    for size in range(1, len(raw) + 1):  # every way of cutting it into chunks
        splitter, text = Splitter(), ""
        for start in range(0, len(raw), size):
            piece = splitter.feed(raw[start : start + size])
            text += output_text(piece)
        text += output_text(splitter.feed(b"", final=True))
        assert text == "é red 中\n" and splitter.offset == len(raw), size


def test_every_job_form_label_has_a_chinese_translation() -> None:
    from crontrio.console.jobform import GROUPS

    catalog = LANGUAGES["zh-CN"][1]
    texts = {g.title for g in GROUPS if g.title} | {t for g in GROUPS for f in g.fields for t in (f.label, f.hint) if t}
    assert not sorted(texts - set(catalog)), "no Chinese for these job form texts"


def test_the_job_form_reads_back_what_it_shows_for_every_field() -> None:
    from crontrio.console.jobform import FIELDS, field_of, form_from_job, job_from_form
    from crontrio.protos import crontrio_pb2 as pb

    job = pb.Job(
        name="full", paused=True, description="Nightly\ncopy", owner="team-ops", tags=["backup", "nightly"],
        spec="30 2 * * *", timezone="Europe/Berlin", type="http", command="https://example.com/x",
        http_method="POST", http_headers={"X-A": "1", "X-B": "two words"}, http_body="{}", expected_statuses=[200, 204],
        timeout_seconds=2.5, retries=3, retry_interval_seconds=10, retry_backoff=2, retry_max_interval_seconds=60,
        retry_jitter=0.1, target="group:gpu", workdir="/tmp", env={"A": "x=y", "B": ""}, overlap_policy="skip",
        misfire_policy="run_once", catch_up_window_seconds=120, route_strategy="random", run_as_user="nobody",
        follow_redirects=True, skip_tls_verify=True, keywords=["ERROR", "panic"], keyword_action="notify",
        after=[pb.JobDependency(job="up", when="always"), pb.JobDependency(job="other")], notify_policy="always",
        notify_channels=["email"], notify_emails=["ops@example.com"], notify_phones=["+123456"],
    )  # fmt: skip
    values = form_from_job(job)
    assert set(values) == set(FIELDS)
    again, errors = job_from_form(values)
    assert errors == {} and again == job
    assert job_from_form({**values, "retries": "1.5"})[1].keys() == {"retries"}
    assert job_from_form({**values, "env": "no equals sign"})[1].keys() == {"env"}
    assert field_of("timeout: must be between 0 and 604800 seconds, got -5") == "timeout_seconds"
    assert field_of("env[0]: bad") == "env" and field_of("job: something") == "" and field_of("no field here") == ""
