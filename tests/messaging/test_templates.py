"""Templates as data: every language renders, HTML is escaped, and the language is chosen well."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.messaging import templates as templates_module
from adapters.messaging.templates import (
    TemplateCatalogue,
    TemplateError,
    default_catalogue,
    parse_accept_language,
)
from tests.messaging.conftest import CODE, message

LANGUAGES = ["en", "de", "fr", "es", "pt", "it", "nl", "pl", "ja", "ar"]
TEMPLATES = Path(templates_module.__file__).parent / "templates"

# One phrase per language that only a real translation of "verification code" contains.
MARKERS = {
    "en": "verification code",
    "de": "Bestätigungscode",
    "fr": "code de vérification",
    "es": "código de verificación",
    "pt": "código de verificação",
    "it": "codice di verifica",
    "nl": "verificatiecode",
    "pl": "kod weryfikacyjny",
    "ja": "認証コード",
    "ar": "رمز التحقق",
}


def test_the_packaged_templates_cover_the_required_languages(catalogue: TemplateCatalogue) -> None:
    assert set(LANGUAGES) <= catalogue.locales


@pytest.mark.parametrize("locale", LANGUAGES)
def test_every_language_renders_sms_voice_and_email_with_the_code_and_issuer(
    catalogue: TemplateCatalogue, locale: str
) -> None:
    sms = catalogue.sms(locale, code=CODE, issuer="Acme", minutes=10)
    voice = catalogue.voice(locale, code=CODE, issuer="Acme", minutes=10)
    email = catalogue.email(locale, code=CODE, issuer="Acme", minutes=10)
    assert CODE in sms and "Acme" in sms and "10" in sms and MARKERS[locale] in sms
    assert "{" not in sms + voice.text + email.text + email.html + email.subject
    assert "Acme" in email.subject
    assert CODE in email.text and CODE in email.html
    assert f'lang="{locale}"' in email.html
    assert MARKERS[locale] in email.text + email.subject


@pytest.mark.parametrize("locale", LANGUAGES)
def test_the_voice_script_reads_the_code_digit_by_digit_twice(
    catalogue: TemplateCatalogue, locale: str
) -> None:
    voice = catalogue.voice(locale, code=CODE, issuer="Acme", minutes=5)
    separator = catalogue.templates(locale).digit_separator
    spelled = separator.join(CODE)
    assert voice.text.count(spelled) == 2
    assert CODE not in voice.text  # never as one number ("four hundred ninety-three thousand")
    assert len(voice.sentences) >= 2


def test_arabic_email_is_right_to_left_and_the_code_stays_left_to_right(
    catalogue: TemplateCatalogue,
) -> None:
    html = catalogue.email("ar", code=CODE, issuer="Acme", minutes=10).html
    assert '<html lang="ar" dir="rtl">' in html
    assert 'dir="ltr"' in html and CODE in html
    assert 'dir="rtl"' not in catalogue.email("de", code=CODE, issuer="Acme", minutes=10).html


def test_the_issuer_is_escaped_in_html_and_kept_on_one_line_everywhere(
    catalogue: TemplateCatalogue,
) -> None:
    issuer = '<script>alert("x")</script> & Co\r\nBcc: victim@example.com'
    email = catalogue.email("en", code=CODE, issuer=issuer, minutes=10)
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in email.html
    assert "\n" not in email.subject and "\r" not in email.subject
    sms = catalogue.sms("en", code=CODE, issuer=issuer, minutes=10)
    assert "\n" not in sms


def test_the_webotp_line_ends_the_sms_only_when_a_domain_is_given(
    catalogue: TemplateCatalogue,
) -> None:
    plain = catalogue.sms("de", code=CODE, issuer="Acme", minutes=10)
    with_line = catalogue.sms(
        "de", code=CODE, issuer="Acme", minutes=10, webotp_domain="Id.Acme.Example"
    )
    assert "@" not in plain
    assert with_line.startswith(plain)
    assert with_line.splitlines()[-1] == f"@id.acme.example #{CODE}"
    with pytest.raises(ValueError, match="host name"):
        catalogue.sms("de", code=CODE, issuer="Acme", minutes=10, webotp_domain="https://x y")


@pytest.mark.parametrize(
    ("locale", "minutes", "phrase"),
    [
        ("en", 1, "1 minute."),
        ("en", 10, "10 minutes."),
        ("de", 1, "1 Minute lang"),
        ("fr", 0, "0 minute."),
        ("pl", 1, "za 1 minutę."),
        ("pl", 3, "za 3 minuty."),
        ("pl", 5, "za 5 minut."),
        ("pl", 12, "za 12 minut."),
        ("pl", 22, "za 22 minuty."),
        ("ar", 1, "خلال دقيقة واحدة."),
        ("ar", 2, "خلال دقيقتين."),
        ("ar", 5, "خلال 5 دقائق."),
        ("ar", 15, "خلال 15 دقيقة."),
        ("ja", 10, "有効期限は10分です"),
    ],
)
def test_durations_use_each_languages_plural_forms(
    catalogue: TemplateCatalogue, locale: str, minutes: int, phrase: str
) -> None:
    assert phrase in catalogue.sms(locale, code=CODE, issuer="Acme", minutes=minutes)


def test_render_picks_the_channels_content_and_falls_back_to_english(
    catalogue: TemplateCatalogue,
) -> None:
    voice = catalogue.render(message(channel="voice", locale="de-AT"))
    assert voice.locale == "de" and voice.voice is not None
    assert voice.voice.twilio_language == "de-DE"
    email = catalogue.render(message(channel="email", to="a@example.com", locale="pt-BR"))
    assert email.locale == "pt" and email.email is not None
    assert email.text == email.email.text
    klingon = catalogue.render(message(locale="tlh"))
    assert klingon.locale == "en" and MARKERS["en"] in klingon.text


def test_every_region_phonenumbers_knows_has_a_language(catalogue: TemplateCatalogue) -> None:
    for region in phonenumbers.SUPPORTED_REGIONS:
        language = catalogue.region_language(region)
        assert language is not None and language.isalpha() and len(language) == 2, region


@pytest.mark.parametrize(
    ("stored", "accept", "region", "chosen"),
    [
        ("de", "fr", "JP", "de"),
        ("pt-BR", None, None, "pt"),
        ("tlh", "es-MX,es;q=0.9", "DE", "es"),
        (None, "fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", "DE", "fr"),
        (None, "en;q=0.5, ja", None, "ja"),
        (None, "zh-CN,zh;q=0.9,it;q=0.3", "CN", "it"),
        (None, "zh-CN,zh;q=0.9", "MA", "ar"),
        (None, "de;q=0", "AT", "de"),
        (None, "de;q=0, nl", "AT", "nl"),
        (None, "*", "JP", "ja"),
        (None, "", "BR", "pt"),
        (None, None, "BE", "nl"),
        (None, None, "CN", "en"),
        (None, None, "001", "en"),
        (None, None, None, "en"),
        (None, "en-GB;q=abc, pl;q=0.1", None, "pl"),
    ],
)
def test_the_locale_is_stored_then_accept_language_then_the_region_then_english(
    catalogue: TemplateCatalogue,
    stored: str | None,
    accept: str | None,
    region: str | None,
    chosen: str,
) -> None:
    assert catalogue.choose(stored=stored, accept_language=accept, region=region) == chosen


def test_accept_language_is_ordered_by_quality_then_position() -> None:
    assert parse_accept_language("da, en-gb;q=0.8, en;q=0.7, x;q=1.5, ;q=1, fr;q=0.8") == [
        "da",
        "en-gb",
        "fr",
        "en",
    ]


tags = st.from_regex(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}", fullmatch=True)
qualities = st.sampled_from(["", ";q=1", ";q=0.9", ";q=0.5", ";q=0.001", ";q=0", ";Q=0.7"])


@given(st.lists(st.tuples(tags, qualities), max_size=6), st.sampled_from([None, "DE", "JP", "ZZ"]))
def test_the_chosen_locale_is_always_known_and_honours_the_best_known_range(
    ranges: list[tuple[str, str]], region: str | None
) -> None:
    catalogue = default_catalogue()
    header = ", ".join(tag + q for tag, q in ranges)
    chosen = catalogue.choose(stored=None, accept_language=header, region=region)
    assert chosen in catalogue.locales
    known = [t for t in parse_accept_language(header) if catalogue.resolve(t)]
    if known:
        assert chosen == catalogue.resolve(known[0])


@given(st.text(max_size=200), st.text(max_size=20), st.text(max_size=5))
def test_choosing_a_locale_never_fails_on_garbage(accept: str, stored: str, region: str) -> None:
    catalogue = default_catalogue()
    assert (
        catalogue.choose(stored=stored, accept_language=accept, region=region) in catalogue.locales
    )


def _copy_templates(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(TEMPLATES, target)
    return target


def test_a_template_with_an_unknown_placeholder_is_refused_at_load(tmp_path: Path) -> None:
    directory = _copy_templates(tmp_path)
    path = directory / "de.toml"
    path.write_text(path.read_text("utf-8").replace("{issuer}.", "{issuer.__class__}."), "utf-8")
    with pytest.raises(TemplateError, match=r"de\.toml"):
        TemplateCatalogue(directory)


def test_a_template_without_the_digits_in_its_voice_script_is_refused(tmp_path: Path) -> None:
    directory = _copy_templates(tmp_path)
    path = directory / "fr.toml"
    path.write_text(path.read_text("utf-8").replace("{digits}", "{code}"), "utf-8")
    with pytest.raises(TemplateError, match="digits"):
        TemplateCatalogue(directory)


def test_a_new_language_is_a_new_data_file(tmp_path: Path) -> None:
    directory = _copy_templates(tmp_path)
    data = (directory / "en.toml").read_text("utf-8").replace("verification code", "sign-in code")
    (directory / "en-GB.toml").write_text(data, "utf-8")
    catalogue = TemplateCatalogue(directory)
    assert catalogue.choose(stored=None, accept_language="en-GB", region=None) == "en-GB"
    assert "sign-in code" in catalogue.sms("en-gb", code=CODE, issuer="Acme", minutes=3)
    assert tomllib.loads(data)["language"] == "English"
