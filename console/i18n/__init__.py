"""Message catalogs: one dict per language, English text as the key (as gettext).

A new language is one more module here with a MESSAGES dict, and an entry in
LANGUAGES; a missing translation shows the English text.
"""

from __future__ import annotations

from collections.abc import Callable

from crontrio.console.i18n import zh_cn

DEFAULT = "en"
# code -> (name shown in the switch, catalog)
LANGUAGES: dict[str, tuple[str, dict[str, str]]] = {
    "en": ("English", {}),
    "zh-CN": ("简体中文", zh_cn.MESSAGES),
}
LANG_COOKIE = "crontrio_lang"


def translator(lang: str) -> Callable[[str], str]:
    catalog = LANGUAGES.get(lang, LANGUAGES[DEFAULT])[1]
    return lambda text: catalog.get(text, text)


def choose(accept_language: str, cookie: str = "") -> str:
    """The language: the switch's cookie if set, else the best Accept-Language match."""
    if cookie in LANGUAGES:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag:
            ranked.append((-quality, index, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag.startswith("zh"):
            # Simplified Chinese for zh, zh-CN, zh-SG, zh-Hans; Traditional users
            # still read it more easily than English.
            return "zh-CN"
        if tag.startswith("en") or tag == "*":
            return "en"
    return DEFAULT
