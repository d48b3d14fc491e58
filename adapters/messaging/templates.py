"""Message templates as data (TOML per language) and the choice of a message's language."""

from __future__ import annotations

import html
import re
import tomllib
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from application.ports import OutboundCode

DEFAULT_LOCALE = "en"
MAX_ACCEPT_LANGUAGE = 1024  # longer headers are cut: nobody lists that many languages

_TOKEN = re.compile(r"\{([a-z_]+)\}")
_RANGE = re.compile(r"\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)

_TEXT_FIELDS = {"code", "issuer", "minutes"}
_VOICE_FIELDS = _TEXT_FIELDS | {"digits"}
_LAYOUT_FIELDS = {
    "lang",
    "dir",
    "subject",
    "heading",
    "intro",
    "code",
    "expiry",
    "warning",
    "ignore",
    "link_block",  # empty, or the link's sentence and the link (a button in HTML)
}
_EMAIL_KEYS = (
    "subject",
    "heading",
    "intro",
    "expiry",
    "warning",
    "ignore",
    "link_intro",
    "link_button",
)
_LINK_HTML = (
    '<p style="margin:0 0 8px;">{intro}</p>\n'
    '<p style="margin:0 0 16px;"><a href="{link}" style="display:inline-block;padding:10px 16px;'
    'background:#0072B2;color:#ffffff;border-radius:6px;text-decoration:none;">{button}</a></p>\n'
)


def _one(n: int) -> str:
    return "one" if n == 1 else "other"


def _zero_one(n: int) -> str:
    return "one" if n in (0, 1) else "other"


def _polish(n: int) -> str:
    if n == 1:
        return "one"
    if n % 10 in (2, 3, 4) and n % 100 not in (12, 13, 14):
        return "few"
    return "many"


def _arabic(n: int) -> str:
    if n in (0, 1, 2):
        return ("zero", "one", "two")[n]
    if 3 <= n % 100 <= 10:
        return "few"
    if 11 <= n % 100 <= 99:
        return "many"
    return "other"


# CLDR plural rules for non-negative integers; a template file names its language's rule.
PLURAL_RULES: dict[str, Callable[[int], str]] = {
    "one": _one,
    "zero_one": _zero_one,
    "polish": _polish,
    "arabic": _arabic,
    "none": lambda n: "other",
}


class TemplateError(ValueError):
    """A template file is missing a text or uses a placeholder it may not use."""


@dataclass(frozen=True, slots=True)
class VoiceScript:
    """What a call says: sentences with a pause between them, and the TTS voice to use."""

    sentences: tuple[str, ...]
    twilio_voice: str
    twilio_language: str
    vonage_language: str

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


@dataclass(frozen=True, slots=True)
class EmailContent:
    subject: str
    text: str
    html: str
    language: str  # a Content-Language value


@dataclass(frozen=True, slots=True)
class Rendered:
    """One message in its language. `text` is the SMS body, the voice script as one text or the
    email's text body; it contains the code and must never be logged."""

    locale: str
    text: str
    voice: VoiceScript | None = None
    email: EmailContent | None = None


@dataclass(frozen=True, slots=True)
class LocaleTemplates:
    locale: str
    language: str
    direction: str
    plural_rule: str
    minutes: Mapping[str, str]
    sms: str
    voice: VoiceScript  # sentences still hold placeholders
    digit_separator: str
    email: Mapping[str, str]

    def duration(self, minutes: int) -> str:
        forms = self.minutes
        form = forms.get(PLURAL_RULES[self.plural_rule](minutes), forms["other"])
        return form.replace("{n}", str(minutes))


def _check(text: Any, allowed: set[str], where: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise TemplateError(f"{where}: missing or empty")
    unknown = set(_TOKEN.findall(text)) - allowed
    if unknown:
        raise TemplateError(f"{where}: unknown placeholders {sorted(unknown)}")
    leftover = _TOKEN.sub("", text)
    if "{" in leftover or "}" in leftover:
        raise TemplateError(f"{where}: a brace that is not a placeholder")
    return text


def _fill(template: str, values: Mapping[str, str]) -> str:
    """Substitute `{name}` tokens in one pass: a value is never read as a template."""
    return _TOKEN.sub(lambda m: values[m.group(1)], template)


def _clean(value: str) -> str:
    """No control characters or line breaks (a header or an SMS must stay one line)."""
    kept = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in value)
    return " ".join(kept.split())


def _load_locale(locale: str, data: Mapping[str, Any]) -> LocaleTemplates:
    where = f"{locale}.toml"
    rule = data.get("plural_rule")
    if rule not in PLURAL_RULES:
        raise TemplateError(f"{where}: plural_rule must be one of {sorted(PLURAL_RULES)}")
    direction = data.get("direction", "ltr")
    if direction not in ("ltr", "rtl"):
        raise TemplateError(f"{where}: direction must be ltr or rtl")
    minutes = data.get("minutes", {})
    if "other" not in minutes:
        raise TemplateError(f"{where}: [minutes] needs at least `other`")
    for form, text in minutes.items():
        _check(text, {"n"}, f"{where} [minutes].{form}")
    voice = data.get("voice", {})
    sentences = voice.get("sentences")
    if not isinstance(sentences, list) or not sentences:
        raise TemplateError(f"{where}: [voice].sentences must be a non-empty list")
    if not any("{digits}" in s for s in sentences):
        raise TemplateError(f"{where}: no voice sentence says {{digits}}")
    email = data.get("email", {})
    return LocaleTemplates(
        locale=locale,
        language=_check(data.get("language"), set(), f"{where} language"),
        direction=direction,
        plural_rule=rule,
        minutes=dict(minutes),
        sms=_check(data.get("sms", {}).get("text"), _TEXT_FIELDS, f"{where} [sms].text"),
        voice=VoiceScript(
            sentences=tuple(
                _check(s, _VOICE_FIELDS, f"{where} [voice].sentences") for s in sentences
            ),
            twilio_voice=_check(voice.get("twilio_voice"), set(), f"{where} twilio_voice"),
            twilio_language=_check(voice.get("twilio_language"), set(), f"{where} twilio_language"),
            vonage_language=_check(voice.get("vonage_language"), set(), f"{where} vonage_language"),
        ),
        digit_separator=str(voice.get("digit_separator", ", ")),
        email={k: _check(email.get(k), _TEXT_FIELDS, f"{where} [email].{k}") for k in _EMAIL_KEYS},
    )


def parse_accept_language(header: str) -> list[str]:
    """RFC 9110 section 12.5.4: the language ranges, best first (by q, then by position);
    ranges with q=0 and malformed items are left out."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header[:MAX_ACCEPT_LANGUAGE].split(",")):
        tag, *params = (part.strip() for part in item.split(";"))
        if not _RANGE.fullmatch(tag):
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                quality = float(value) if _QVALUE.fullmatch(value) else -1.0
        if quality > 0:
            ranked.append((-quality, position, tag.lower()))
    return [tag for _, _, tag in sorted(ranked)]


class TemplateCatalogue:
    """Every language's templates, loaded and checked once. Renders messages (HTML-escaped in
    the email's HTML body) and implements `MessageLocales`."""

    def __init__(self, directory: Traversable | Path | None = None) -> None:
        root: Traversable | Path = directory or resources.files(__package__) / "templates"
        locales: dict[str, LocaleTemplates] = {}
        for entry in sorted(root.iterdir(), key=lambda e: e.name):
            name = entry.name
            if name.endswith(".toml") and name != "regions.toml":
                locale = name.removesuffix(".toml")
                locales[locale.lower()] = _load_locale(
                    locale, tomllib.loads(entry.read_text("utf-8"))
                )
        if DEFAULT_LOCALE not in locales:
            raise TemplateError(f"the templates must include {DEFAULT_LOCALE}.toml")
        self._locales = locales
        regions = tomllib.loads((root / "regions.toml").read_text("utf-8")).get("regions", {})
        self._regions = {str(k).upper(): str(v).lower() for k, v in regions.items()}
        self._html = _check((root / "email.html").read_text("utf-8"), _LAYOUT_FIELDS, "email.html")
        self._text = _check((root / "email.txt").read_text("utf-8"), _LAYOUT_FIELDS, "email.txt")

    @property
    def locales(self) -> frozenset[str]:
        return frozenset(t.locale for t in self._locales.values())

    def region_language(self, region: str | None) -> str | None:
        return self._regions.get(region.upper()) if region else None

    def templates(self, locale: str) -> LocaleTemplates:
        """The templates of `locale`, of its language, or English."""
        found = self.resolve(locale)
        return self._locales[(found or DEFAULT_LOCALE).lower()]

    def resolve(self, tag: str | None) -> str | None:
        """RFC 4647 lookup: `pt-BR` finds `pt-br`, else `pt`; None when no template matches."""
        if not tag or not _RANGE.fullmatch(tag) or tag == "*":
            return None
        subtags = tag.lower().split("-")
        while subtags:
            found = self._locales.get("-".join(subtags))
            if found:
                return found.locale
            subtags.pop()
            if subtags and len(subtags[-1]) == 1:  # never end on a singleton (x-, u-)
                subtags.pop()
        return None

    def choose(self, *, stored: str | None, accept_language: str | None, region: str | None) -> str:
        found = self.resolve(stored)
        if found:
            return found
        for tag in parse_accept_language(accept_language or ""):
            if tag == "*":  # any language will do: the number's own
                break
            found = self.resolve(tag)
            if found:
                return found
        return self.resolve(self.region_language(region)) or DEFAULT_LOCALE

    def _values(self, t: LocaleTemplates, code: str, issuer: str, minutes: int) -> dict[str, str]:
        return {"code": code, "issuer": _clean(issuer), "minutes": t.duration(minutes)}

    def sms(
        self,
        locale: str,
        *,
        code: str,
        issuer: str,
        minutes: int,
        webotp_domain: str | None = None,
    ) -> str:
        """The SMS text; with a domain, a last line `@domain #code` for the WebOTP API."""
        t = self.templates(locale)
        text = _fill(t.sms, self._values(t, code, issuer, minutes))
        if webotp_domain:
            text += f"\n\n@{check_webotp_domain(webotp_domain)} #{code}"
        return text

    def voice(self, locale: str, *, code: str, issuer: str, minutes: int) -> VoiceScript:
        """The call's sentences: the code read one character at a time, twice."""
        t = self.templates(locale)
        values = self._values(t, code, issuer, minutes) | {"digits": t.digit_separator.join(code)}
        return VoiceScript(
            sentences=tuple(_fill(s, values) for s in t.voice.sentences),
            twilio_voice=t.voice.twilio_voice,
            twilio_language=t.voice.twilio_language,
            vonage_language=t.voice.vonage_language,
        )

    def email(
        self, locale: str, *, code: str, issuer: str, minutes: int, link: str | None = None
    ) -> EmailContent:
        """Subject, text and HTML; with `link`, a sentence and the link (a button in HTML)."""
        t = self.templates(locale)
        values = self._values(t, code, issuer, minutes)
        texts = {key: _fill(template, values) for key, template in t.email.items()}
        layout = texts | {"lang": t.locale, "dir": t.direction, "code": code}
        escaped = {k: html.escape(v, quote=True) for k, v in layout.items()}
        text_link = html_link = ""
        if link is not None:
            text_link = f"\n{texts['link_intro']}\n{link}\n"
            html_link = _LINK_HTML.format(
                intro=escaped["link_intro"],
                link=html.escape(link, quote=True),
                button=escaped["link_button"],
            )
        return EmailContent(
            subject=texts["subject"],
            text=_fill(self._text, layout | {"link_block": text_link}),
            html=_fill(self._html, escaped | {"link_block": html_link}),
            language=t.locale,
        )

    def render(self, message: OutboundCode, *, webotp_domain: str | None = None) -> Rendered:
        """The message for its channel, in its locale (English when the templates lack it)."""
        locale = self.templates(message.locale).locale
        code, issuer, minutes = message.code, message.issuer, message.ttl_minutes
        if message.channel == "voice":
            script = self.voice(locale, code=code, issuer=issuer, minutes=minutes)
            return Rendered(locale, script.text, voice=script)
        if message.channel == "email":
            content = self.email(
                locale, code=code, issuer=issuer, minutes=minutes, link=message.link
            )
            return Rendered(locale, content.text, email=content)
        text = self.sms(
            locale, code=code, issuer=issuer, minutes=minutes, webotp_domain=webotp_domain
        )
        return Rendered(locale, text)


def check_webotp_domain(domain: str) -> str:
    """A lower-case host name, as the WebOTP line needs it (no scheme, no port)."""
    host = domain.strip().lower()
    if not _HOSTNAME.fullmatch(host):
        raise ValueError("the WebOTP domain must be a host name such as login.example.com")
    return host


@cache
def default_catalogue() -> TemplateCatalogue:
    """The packaged templates, read from disk once per process."""
    return TemplateCatalogue()
