"""Vonage's SMS API and Voice API, as a local server that answers like Vonage."""

from __future__ import annotations

import json

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from pytest_httpserver import HTTPServer

from adapters.messaging.base import ProviderError
from adapters.messaging.templates import TemplateCatalogue
from adapters.messaging.vonage import VonageProvider, is_gsm7
from tests.messaging.conftest import CODE, message

KEY = "abcd1234"
SECRET = "not-a-real-secret"
APPLICATION = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"


def vonage(api: HTTPServer, key: RSAKey | None = None, **kwargs: object) -> VonageProvider:
    options: dict[str, object] = {
        "api_key": KEY,
        "api_secret": SECRET,
        "from_": "Acme",
        "voice_from": "+447700900000",
        "sms_base_url": api.url_for("/"),
        "voice_base_url": api.url_for("/"),
        "read_timeout": 0.5,
        "now": lambda: 1_800_000_000.0,
    }
    if key is not None:
        options |= {"application_id": APPLICATION, "private_key_pem": key.as_pem(private=True)}
    options.update(kwargs)
    return VonageProvider(**options)  # type: ignore[arg-type]


def accepted(message_id: str = "0A0000000123ABCD1") -> dict[str, object]:
    return {
        "message-count": "1",
        "messages": [
            {
                "to": "447400123456",
                "message-id": message_id,
                "status": "0",
                "remaining-balance": "3.14159265",
                "message-price": "0.03330000",
                "network": "12345",
            }
        ],
    }


def test_an_sms_is_a_form_post_with_key_and_secret_and_the_message_id_comes_back(
    api: HTTPServer, catalogue: TemplateCatalogue
) -> None:
    api.expect_request("/sms/json", method="POST").respond_with_json(accepted())
    sms = message(locale="it", message_id="m-42")
    result = vonage(api, status_callback="https://tessera.test/cb/vonage").send(
        sms, catalogue.render(sms)
    )
    assert result.provider_message_id == "0A0000000123ABCD1"
    form = api.log[0][0].form
    assert (form["api_key"], form["api_secret"], form["from"]) == (KEY, SECRET, "Acme")
    assert form["to"] == "447400123456"
    assert form["client-ref"] == "m-42"
    assert form["callback"] == "https://tessera.test/cb/vonage"
    assert form["text"].startswith(f"{CODE} è il tuo codice di verifica per Acme")
    assert "type" not in form  # Italian fits GSM-7


@pytest.mark.parametrize("locale", ["ja", "ar", "pl", "es"])
def test_text_outside_gsm_7_goes_as_unicode(
    api: HTTPServer, catalogue: TemplateCatalogue, locale: str
) -> None:
    api.expect_request("/sms/json").respond_with_json(accepted())
    sms = message(locale=locale)
    vonage(api).send(sms, catalogue.render(sms))
    assert api.log[0][0].form["type"] == "unicode"


def test_gsm_7_covers_the_latin_languages_but_not_the_others(catalogue: TemplateCatalogue) -> None:
    def text(locale: str) -> str:
        return catalogue.sms(locale, code=CODE, issuer="Acme", minutes=10)

    assert all(is_gsm7(text(loc)) for loc in ["en", "de", "fr", "it", "nl"])
    # Spanish and Polish "ó", Portuguese "ã", Japanese and Arabic need UCS-2
    assert not any(is_gsm7(text(loc)) for loc in ["es", "pt", "pl", "ja", "ar"])


@pytest.mark.parametrize(
    ("status", "fault"),
    [
        ("1", True),
        ("2", False),
        ("3", False),
        ("4", True),
        ("6", False),
        ("9", True),
        ("15", False),
    ],
)
def test_a_non_zero_status_is_an_error_and_only_account_problems_are_faults(
    api: HTTPServer, catalogue: TemplateCatalogue, status: str, fault: bool
) -> None:
    api.expect_request("/sms/json").respond_with_json(
        {"message-count": "1", "messages": [{"status": status, "error-text": f"Problem {status}"}]}
    )
    sms = message()
    with pytest.raises(ProviderError) as caught:
        vonage(api).send(sms, catalogue.render(sms))
    assert caught.value.reason == f"status {status}: Problem {status}"
    assert caught.value.provider_fault is fault


def test_an_error_text_that_echoes_the_secret_or_code_is_redacted(
    api: HTTPServer, catalogue: TemplateCatalogue
) -> None:
    api.expect_request("/sms/json").respond_with_json(
        {"messages": [{"status": "6", "error-text": f"bad {SECRET} text {CODE}"}]}
    )
    sms = message()
    with pytest.raises(ProviderError) as caught:
        vonage(api).send(sms, catalogue.render(sms))
    assert SECRET not in str(caught.value) and CODE not in str(caught.value)


@pytest.mark.parametrize(
    "body", [{"message-count": "0", "messages": []}, {"messages": [{"status": "0"}]}, {"x": 1}]
)
def test_malformed_sms_answers_are_provider_faults(
    api: HTTPServer, catalogue: TemplateCatalogue, body: dict[str, object]
) -> None:
    api.expect_request("/sms/json").respond_with_json(body)
    sms = message()
    with pytest.raises(ProviderError) as caught:
        vonage(api).send(sms, catalogue.render(sms))
    assert caught.value.provider_fault


def test_a_call_is_signed_with_the_applications_rs256_jwt_and_talks_in_the_users_language(
    api: HTTPServer, catalogue: TemplateCatalogue, rsa_key: RSAKey
) -> None:
    api.expect_request("/v1/calls", method="POST").respond_with_json(
        {
            "uuid": "63f61863-4a51-4f6b-86e1-46edebcf9356",
            "status": "started",
            "direction": "outbound",
            "conversation_uuid": "CON-f972836a-550f-45fa-956c-12a2ab5b7d22",
        },
        status=201,
    )
    call = message(channel="voice", locale="ar", to="+971501234567", region="AE")
    result = vonage(api, rsa_key, status_callback="https://tessera.test/cb/vonage").send(
        call, catalogue.render(call)
    )
    assert result.provider_message_id == "63f61863-4a51-4f6b-86e1-46edebcf9356"
    request = api.log[0][0]
    scheme, token = request.headers["Authorization"].split(" ")
    public = RSAKey.import_key(rsa_key.as_pem(private=False))
    decoded = jwt.decode(token, public, algorithms=["RS256"])
    assert scheme == "Bearer" and decoded.header["alg"] == "RS256"
    claims = decoded.claims
    assert claims["application_id"] == APPLICATION
    assert claims["iat"] == 1_800_000_000 and claims["exp"] > claims["iat"]
    assert claims["jti"]
    body = json.loads(request.get_data())
    assert body["to"] == [{"type": "phone", "number": "971501234567"}]
    assert body["from"] == {"type": "phone", "number": "447700900000"}
    assert body["event_url"] == ["https://tessera.test/cb/vonage"]
    assert {action["action"] for action in body["ncco"]} == {"talk"}
    assert {action["language"] for action in body["ncco"]} == {"ar"}
    spoken = " ".join(action["text"] for action in body["ncco"])
    assert spoken.count("4، 9، 3، 8، 1، 7") == 2


def test_a_token_signed_by_another_key_does_not_verify(api: HTTPServer, rsa_key: RSAKey) -> None:
    other = RSAKey.generate_key(2048)
    token = vonage(api, other).application_jwt()
    public = RSAKey.import_key(rsa_key.as_pem(private=False))
    with pytest.raises(Exception, match="signature"):
        jwt.decode(token, public, algorithms=["RS256"])


def test_a_voice_error_is_reported_from_the_problem_body(
    api: HTTPServer, catalogue: TemplateCatalogue, rsa_key: RSAKey
) -> None:
    api.expect_request("/v1/calls").respond_with_json(
        {
            "type": "https://developer.nexmo.com/api-errors#unauthorized",
            "title": "Unauthorized",
            "detail": "You did not provide correct credentials.",
        },
        status=401,
    )
    call = message(channel="voice")
    with pytest.raises(ProviderError) as caught:
        vonage(api, rsa_key).send(call, catalogue.render(call))
    assert (
        caught.value.reason == "HTTP 401: Unauthorized (You did not provide correct credentials.)"
    )
    assert caught.value.provider_fault


def test_without_an_application_vonage_carries_sms_only(api: HTTPServer) -> None:
    assert vonage(api).channels == frozenset({"sms"})
    with pytest.raises(ValueError, match="application id"):
        VonageProvider(api_key=KEY, api_secret=SECRET, from_="Acme", application_id=APPLICATION)
