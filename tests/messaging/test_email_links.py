"""An email may carry a link back to the application: a line in text, a button in HTML."""

from __future__ import annotations

import pytest

from adapters.messaging.templates import default_catalogue

LOCALES = ("en", "de", "fr", "es", "pt", "it", "nl", "pl", "ja", "ar")


@pytest.mark.parametrize("locale", LOCALES)
def test_a_link_is_a_line_and_an_escaped_button(locale: str) -> None:
    link = "https://app.example/verify?authentication_id=x&code=123456"
    email = default_catalogue().email(
        locale, code="123456", issuer="Acme <&>", minutes=5, link=link
    )
    assert f"\n{link}\n" in email.text
    assert 'href="https://app.example/verify?authentication_id=x&amp;code=123456"' in email.html
    assert "Acme &lt;&amp;&gt;" in email.html and "<&>" not in email.html


@pytest.mark.parametrize("locale", LOCALES)
def test_without_a_link_nothing_is_added(locale: str) -> None:
    email = default_catalogue().email(locale, code="123456", issuer="Acme", minutes=5)
    assert "href" not in email.html and "http" not in email.text
