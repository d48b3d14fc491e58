"""Twilio's Messages and Calls APIs, as a local server that answers like Twilio."""

from __future__ import annotations

import base64
import time
from xml.etree import ElementTree

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from adapters.messaging.base import ProviderError
from adapters.messaging.templates import TemplateCatalogue
from adapters.messaging.twilio import TwilioProvider
from tests.messaging.conftest import CODE, message, wait_for_requests

SID = "AC" + "0" * 32
TOKEN = "test-token-not-real"
MESSAGES = f"/2010-04-01/Accounts/{SID}/Messages.json"
CALLS = f"/2010-04-01/Accounts/{SID}/Calls.json"


def twilio(api: HTTPServer, **kwargs: object) -> TwilioProvider:
    options: dict[str, object] = {
        "account_sid": SID,
        "auth_token": TOKEN,
        "from_number": "+15005550006",
        "base_url": api.url_for("/"),
        "read_timeout": 0.5,
    }
    options.update(kwargs)
    return TwilioProvider(**options)  # type: ignore[arg-type]


def created(sid: str) -> dict[str, object]:
    return {"sid": sid, "status": "queued", "error_code": None}


def test_an_sms_is_a_form_post_with_basic_auth_and_the_sid_comes_back(
    api: HTTPServer, catalogue: TemplateCatalogue
) -> None:
    api.expect_request(MESSAGES, method="POST").respond_with_json(created("SM123"), status=201)
    sms = message(locale="de")
    accepted = twilio(api, status_callback="https://tessera.test/cb/twilio").send(
        sms, catalogue.render(sms)
    )
    assert accepted.provider_message_id == "SM123"
    request, _ = api.log[0]
    assert (
        request.headers["Authorization"]
        == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    )
    assert request.content_type.startswith("application/x-www-form-urlencoded")
    assert request.form["To"] == "+447400123456"
    assert request.form["From"] == "+15005550006"
    assert request.form["StatusCallback"] == "https://tessera.test/cb/twilio"
    assert request.form["Body"].startswith(f"{CODE} ist Ihr Bestätigungscode für Acme.")


def test_a_messaging_service_replaces_the_from_number_and_drops_stale_codes(
    api: HTTPServer, catalogue: TemplateCatalogue
) -> None:
    api.expect_request(MESSAGES, method="POST").respond_with_json(created("SM9"), status=201)
    sms = message(ttl_minutes=5)
    twilio(api, from_number=None, messaging_service_sid="MG1", channels=frozenset({"sms"})).send(
        sms, catalogue.render(sms)
    )
    form = api.log[0][0].form
    assert "From" not in form
    assert (form["MessagingServiceSid"], form["ValidityPeriod"]) == ("MG1", "300")


def test_a_call_carries_twiml_that_says_the_digits_twice_in_the_users_language(
    api: HTTPServer, catalogue: TemplateCatalogue
) -> None:
    api.expect_request(CALLS, method="POST").respond_with_json(created("CA77"), status=201)
    call = message(channel="voice", locale="fr")
    accepted = twilio(api).send(call, catalogue.render(call))
    assert accepted.provider_message_id == "CA77"
    form = api.log[0][0].form
    assert (form["To"], form["From"]) == ("+447400123456", "+15005550006")
    document = ElementTree.fromstring(form["Twiml"])
    says = document.findall("Say")
    assert document.tag == "Response" and len(says) == 3
    assert {(s.get("language"), s.get("voice")) for s in says} == {("fr-FR", "Polly.Celine")}
    spoken = " ".join(s.text or "" for s in says)
    assert spoken.count("4, 9, 3, 8, 1, 7") == 2 and "Bonjour" in spoken
    assert len(document.findall("Pause")) >= 2


def test_an_issuer_cannot_inject_twiml(api: HTTPServer, catalogue: TemplateCatalogue) -> None:
    api.expect_request(CALLS, method="POST").respond_with_json(created("CA1"), status=201)
    call = message(channel="voice", issuer='Acme</Say><Dial>+19005550000</Dial><Say a="')
    twilio(api).send(call, catalogue.render(call))
    document = ElementTree.fromstring(api.log[0][0].form["Twiml"])
    assert document.find("Dial") is None


def test_a_4xx_gives_twilios_code_and_message_as_a_message_fault(
    api: HTTPServer, catalogue: TemplateCatalogue
) -> None:
    api.expect_request(MESSAGES).respond_with_json(
        {
            "code": 21211,
            "message": "The 'To' number +447400123456 is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211",
            "status": 400,
        },
        status=400,
    )
    sms = message()
    with pytest.raises(ProviderError) as caught:
        twilio(api).send(sms, catalogue.render(sms))
    assert caught.value.reason.startswith("HTTP 400 error 21211: The 'To' number")
    assert caught.value.provider_fault is False


def test_bad_credentials_are_the_providers_fault(
    api: HTTPServer, catalogue: TemplateCatalogue
) -> None:
    api.expect_request(MESSAGES).respond_with_json(
        {"code": 20003, "message": "Authenticate", "status": 401}, status=401
    )
    sms = message()
    with pytest.raises(ProviderError) as caught:
        twilio(api).send(sms, catalogue.render(sms))
    assert caught.value.provider_fault is True and "20003" in caught.value.reason


def test_an_error_that_echoes_the_code_or_the_token_is_redacted(
    api: HTTPServer, catalogue: TemplateCatalogue
) -> None:
    api.expect_request(MESSAGES).respond_with_json(
        {"code": 30007, "message": f"Body '{CODE} is your' filtered; token {TOKEN}"}, status=400
    )
    sms = message()
    with pytest.raises(ProviderError) as caught:
        twilio(api).send(sms, catalogue.render(sms))
    assert CODE not in str(caught.value) and TOKEN not in str(caught.value)
    assert "[redacted]" in caught.value.reason


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (Response("<html>Bad gateway</html>", status=502), "HTTP 502"),
        (Response("{not json", status=201, content_type="application/json"), "not JSON"),
        (Response('{"status": "queued"}', status=201, content_type="application/json"), "sid"),
        (Response("[]", status=201, content_type="application/json"), "not an object"),
    ],
)
def test_5xx_and_malformed_answers_are_provider_faults(
    api: HTTPServer, catalogue: TemplateCatalogue, response: Response, reason: str
) -> None:
    api.expect_request(MESSAGES).respond_with_response(response)
    sms = message()
    with pytest.raises(ProviderError) as caught:
        twilio(api).send(sms, catalogue.render(sms))
    assert reason in caught.value.reason and caught.value.provider_fault


def test_a_slow_answer_times_out(api: HTTPServer, catalogue: TemplateCatalogue) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("{}", status=201)

    api.expect_request(MESSAGES).respond_with_handler(slow)
    sms = message()
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        twilio(api, read_timeout=0.2).send(sms, catalogue.render(sms))
    assert "timed out" in caught.value.reason and caught.value.provider_fault
    assert time.monotonic() - started < 0.55
    wait_for_requests(api, 1)  # the slow answer lands in this test's log, not the next one's


def test_a_refused_connection_is_a_provider_fault(catalogue: TemplateCatalogue) -> None:
    provider = TwilioProvider(
        account_sid=SID, auth_token=TOKEN, from_number="+15005550006", base_url="http://127.0.0.1:9"
    )
    sms = message()
    with pytest.raises(ProviderError, match="could not connect") as caught:
        provider.send(sms, catalogue.render(sms))
    assert TOKEN not in str(caught.value)


def test_email_is_not_twilios_job(api: HTTPServer, catalogue: TemplateCatalogue) -> None:
    email = message(channel="email", to="a@example.com")
    with pytest.raises(ProviderError) as caught:
        twilio(api).send(email, catalogue.render(email))
    assert caught.value.provider_fault is False and not api.log
