"""SMS, voice and email codes over HTTP, delivered by the console provider (and a signed
webhook provider on a local server): enrolment, login, single use, expiry, caps, languages."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from uuid import UUID

import jwt
import phonenumbers
import pytest
from eventsourcing.utils import get_topic

from application.webhooks import sign
from domain.delivery import Delivery
from tests.http.conftest import context

MOBILE = "+447400123456"  # a UK mobile number (phonenumbers: MOBILE, carrier "Three")
FIXED = "+442079460000"  # a London fixed line


def messages(container) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    path = Path(container.settings().home) / "messages.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def last_code(container) -> str:  # type: ignore[no-untyped-def]
    """The code in the last message: six digits, or read out one by one in a voice script."""
    text = messages(container)[-1]["text"]
    found = re.search(r"\b\d{6}\b", text) or re.search(r"\d(?:[,.、 ]+\d){5}", text)
    assert found, text
    return re.sub(r"\D", "", found.group(0))


def enrol_phone(client, headers, container, user="alice", method="sms", number=MOBILE, **extra):  # type: ignore[no-untyped-def]
    response = client.post(
        f"/v1/users/{user}/enrolments",
        json={"method": method, "phone_number": number, **extra},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    confirmed = client.post(
        f"/v1/enrolments/{body['enrolment_id']}/confirm",
        json={"code": last_code(container)},
        headers=headers,
    )
    assert confirmed.status_code == 200, confirmed.text
    return body


def start(client, headers, user="alice"):  # type: ignore[no-untyped-def]
    response = client.post(
        "/v1/authentications", json={"user_id": user, "context": context()}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def send(client, headers, authentication_id, method="sms", **extra):  # type: ignore[no-untyped-def]
    return client.post(
        f"/v1/authentications/{authentication_id}/challenges",
        json={"method": method, **extra},
        headers=headers,
    )


def verify(client, headers, authentication_id, code, method="sms"):  # type: ignore[no-untyped-def]
    return client.post(
        f"/v1/authentications/{authentication_id}/verify",
        json={"method": method, "code": code},
        headers=headers,
    )


def topics(container, aggregate_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    recorder = container.identity_app().recorder
    return [e.topic.rsplit(".", 1)[-1] for e in recorder.select_events(UUID(aggregate_id))]


def test_a_phone_enrols_with_its_first_code_and_the_number_is_never_shown(
    client, headers, container
) -> None:
    response = client.post(
        "/v1/users/alice/enrolments",
        json={"method": "sms", "phone_number": MOBILE},
        headers=headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending"
    sent = body["code_sent"]
    assert sent["destination"].endswith("3456") and "7400123" not in sent["destination"]
    assert sent["delivery_status"] == "sent" and sent["provider"] == "console"
    assert MOBILE not in response.text
    code = last_code(container)
    assert code not in response.text
    assert messages(container)[-1]["to"] == MOBILE

    wrong = "000000" if code != "000000" else "111111"
    refused = client.post(
        f"/v1/enrolments/{body['enrolment_id']}/confirm", json={"code": wrong}, headers=headers
    )
    assert refused.status_code == 401
    confirmed = client.post(
        f"/v1/enrolments/{body['enrolment_id']}/confirm", json={"code": code}, headers=headers
    )
    assert confirmed.status_code == 200
    listed = client.get("/v1/users/alice/enrolments", headers=headers).json()
    assert listed[0]["status"] == "active" and listed[0]["destination"] == sent["destination"]
    assert MOBILE not in json.dumps(listed)


def test_an_sms_code_logs_in_once(client, headers, container) -> None:
    enrol_phone(client, headers, container)
    login = start(client, headers)
    assert "sms" in login["methods"]
    sent = send(client, headers, login["authentication_id"])
    assert sent.status_code == 201, sent.text
    code = last_code(container)
    response = verify(client, headers, login["authentication_id"], code)
    assert response.status_code == 200 and response.json()["status"] == "satisfied"
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["amr"] == ["sms"]
    again = start(client, headers)
    assert verify(client, headers, again["authentication_id"], code).status_code == 409


def test_a_wrong_code_costs_a_try_and_the_code_dies_after_its_tries(
    client, headers, container, clock
) -> None:
    enrol_phone(client, headers, container)
    login = start(client, headers)
    send(client, headers, login["authentication_id"])
    code = last_code(container)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(3):
        assert verify(client, headers, login["authentication_id"], wrong).status_code == 401
        clock.advance(20)  # past the throttle's back-off
    dead = verify(client, headers, login["authentication_id"], code)
    assert dead.status_code == 409 and "new one" in dead.json()["detail"]


def test_a_new_code_replaces_the_old_after_the_cool_down(client, headers, container, clock) -> None:
    enrol_phone(client, headers, container)
    login = start(client, headers)
    send(client, headers, login["authentication_id"])
    old = last_code(container)
    too_soon = send(client, headers, login["authentication_id"])
    assert too_soon.status_code == 429 and int(too_soon.headers["retry-after"]) <= 30
    clock.advance(31)
    assert send(client, headers, login["authentication_id"]).status_code == 201
    new = last_code(container)
    if new != old:
        assert verify(client, headers, login["authentication_id"], old).status_code == 401
    assert verify(client, headers, login["authentication_id"], new).status_code == 200


def test_a_code_expires(client, headers, container, clock) -> None:
    enrol_phone(client, headers, container)
    login = start(client, headers)
    send(client, headers, login["authentication_id"])
    code = last_code(container)
    clock.advance(299)
    # the login itself also expires after 300 s, so either answer is a refusal without a token
    response = verify(client, headers, login["authentication_id"], code)
    assert response.status_code == 200
    login = start(client, headers)
    send(client, headers, login["authentication_id"])
    code = last_code(container)
    clock.advance(301)
    assert verify(client, headers, login["authentication_id"], code).status_code == 409


def test_a_fixed_line_gets_voice_only(client, headers, container) -> None:
    refused = client.post(
        "/v1/users/alice/enrolments",
        json={"method": "sms", "phone_number": FIXED},
        headers=headers,
    )
    assert refused.status_code == 422 and "voice" in refused.json()["detail"]
    enrol_phone(client, headers, container, method="voice", number=FIXED, locale="de")
    login = start(client, headers)
    assert send(client, headers, login["authentication_id"], method="voice").status_code == 201
    message = messages(container)[-1]
    assert message["channel"] == "voice" and message["locale"] == "de"
    response = verify(
        client, headers, login["authentication_id"], last_code(container), method="voice"
    )
    assert response.status_code == 200, (message, response.text)
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["amr"] == ["tel"]


def test_voip_numbers_and_other_countries_follow_the_policy(client, headers, admin_headers) -> None:
    voip = phonenumbers.format_number(
        phonenumbers.example_number_for_type("GB", phonenumbers.PhoneNumberType.VOIP),
        phonenumbers.PhoneNumberFormat.E164,
    )
    refused = client.post(
        "/v1/users/alice/enrolments",
        json={"method": "sms", "phone_number": voip},
        headers=headers,
    )
    assert refused.status_code == 422 and "VoIP" in refused.json()["detail"]
    changed = client.patch("/v1/policy", json={"phone_countries": ["DE"]}, headers=admin_headers)
    assert changed.status_code == 200, changed.text
    refused = client.post(
        "/v1/users/alice/enrolments",
        json={"method": "sms", "phone_number": MOBILE},
        headers=headers,
    )
    assert refused.status_code == 422 and "country" in refused.json()["detail"]
    invalid = client.post(
        "/v1/users/alice/enrolments",
        json={"method": "sms", "phone_number": "+44123"},
        headers=headers,
    )
    assert invalid.status_code == 422


def test_toll_fraud_caps_refuse_and_record(
    client, headers, admin_headers, container, clock
) -> None:
    assert (
        client.patch(
            "/v1/policy", json={"send_caps": {"number": 2}}, headers=admin_headers
        ).status_code
        == 200
    )
    enrol_phone(client, headers, container)  # send 1
    login = start(client, headers)
    assert send(client, headers, login["authentication_id"]).status_code == 201  # send 2
    clock.advance(31)
    refused = send(client, headers, login["authentication_id"])
    assert refused.status_code == 429
    assert len(messages(container)) == 2
    refusals = container.identity_app().recorder.select_notifications(
        1, 1000, topics=[get_topic(Delivery.Refused)]
    )
    assert len(refusals) == 1 and b"number_cap" in refusals[0].state
    policy = client.get("/v1/policy", headers=headers).json()
    assert policy["send_caps"] == {"number": 2, "ip": 20, "organisation": 1000, "country": 200}


def test_sms_does_not_count_where_the_policy_restricts_it(
    client, headers, admin_headers, container
) -> None:
    enrol_phone(client, headers, container)
    assert (
        client.patch(
            "/v1/policy", json={"restricted_max_aal": 1}, headers=admin_headers
        ).status_code
        == 200
    )
    login = start(client, headers)
    assert "sms" not in login["methods"]
    assert "stronger authenticator" in login["notice"]
    assert send(client, headers, login["authentication_id"]).status_code == 422


def test_email_codes_in_the_users_language(client, headers, admin_headers, container) -> None:
    response = client.post(
        "/v1/users/alice/enrolments",
        json={"method": "email", "email": "alice@example.com", "locale": "fr"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["code_sent"]["destination"] == "a•••@e•••.com"
    message = messages(container)[-1]
    assert message["channel"] == "email" and message["locale"] == "fr" and message["subject"]
    confirmed = client.post(
        f"/v1/enrolments/{response.json()['enrolment_id']}/confirm",
        json={"code": last_code(container)},
        headers=headers,
    )
    assert confirmed.status_code == 200
    # an email code proves no device (NIST §5.1.3.1): AAL1 only, so not at the default AAL2
    assert "email" not in start(client, headers)["methods"]
    client.patch("/v1/policy", json={"login_aal": 1}, headers=admin_headers)
    login = start(client, headers)
    assert "email" in login["methods"]
    send(client, headers, login["authentication_id"], method="email")
    response = verify(client, headers, login["authentication_id"], last_code(container), "email")
    assert response.status_code == 200
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["acr"].endswith("/aal/1") and claims["amr"] == ["otp"]


def test_the_language_follows_accept_language_without_a_stored_locale(
    client, headers, container
) -> None:
    enrol_phone(client, headers, container, accept_language="ja,en;q=0.5")
    assert messages(container)[-1]["locale"] == "ja"


@pytest.fixture
def webhook_provider(httpserver, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TESSERA_SMS_PROVIDERS", "webhook")
    monkeypatch.setenv("TESSERA_SMS_WEBHOOK_URL", httpserver.url_for("/send"))
    monkeypatch.setenv("TESSERA_SMS_WEBHOOK_SECRET", "whsec_test")
    received: list[dict[str, Any]] = []

    def handler(request):  # type: ignore[no-untyped-def]
        from werkzeug import Response

        received.append(json.loads(request.data))
        return Response(json.dumps({"id": "wh-" + received[-1]["message_id"]}), status=200)

    httpserver.expect_request("/send", method="POST").respond_with_handler(handler)
    return received


def test_signed_delivery_callbacks_are_recorded(
    client, headers, container, clock, webhook_provider
) -> None:
    response = client.post(
        "/v1/users/alice/enrolments",
        json={"method": "sms", "phone_number": MOBILE},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    sent = response.json()["code_sent"]
    assert sent["provider"] == "webhook" and webhook_provider[0]["to"] == MOBILE
    body = json.dumps({"message_id": f"wh-{sent['delivery_id']}", "status": "delivered"}).encode()
    forged = client.post(
        "/v1/providers/webhook/status",
        content=body,
        headers={"Tessera-Signature": sign("wrong", body, timestamp=int(clock.now().timestamp()))},
    )
    assert forged.status_code == 401
    assert forged.headers["content-type"].startswith("application/problem+json")
    signature = sign("whsec_test", body, timestamp=int(clock.now().timestamp()))
    accepted = client.post(
        "/v1/providers/webhook/status", content=body, headers={"Tessera-Signature": signature}
    )
    assert accepted.status_code == 204, accepted.text
    assert topics(container, sent["delivery_id"]) == ["Requested", "Attempted", "StatusReported"]


def test_without_an_ip_only_the_other_caps_apply(client, headers, admin_headers) -> None:
    client.patch("/v1/policy", json={"send_caps": {"ip": 2}}, headers=admin_headers)
    for n in range(4):  # no "ip": four users enrol, more than the IP cap, all get codes
        response = client.post(
            f"/v1/users/user{n}/enrolments",
            json={"method": "sms", "phone_number": f"+44740012345{n}"},
            headers=headers,
        )
        assert response.status_code == 201, response.text
    statuses = [
        client.post(
            f"/v1/users/other{n}/enrolments",
            json={"method": "sms", "phone_number": f"+44740012346{n}", "ip": "198.51.100.9"},
            headers=headers,
        ).status_code
        for n in range(3)
    ]
    assert statuses == [201, 201, 429]


def test_an_email_link_brings_the_code_back_to_the_application(
    client, headers, admin_headers, container
) -> None:
    from urllib.parse import parse_qs, urlsplit

    client.patch("/v1/policy", json={"login_aal": 1}, headers=admin_headers)
    enrolled = client.post(
        "/v1/users/alice/enrolments",
        json={"method": "email", "email": "alice@example.com"},
        headers=headers,
    ).json()
    client.post(
        f"/v1/enrolments/{enrolled['enrolment_id']}/confirm",
        json={"code": last_code(container)},
        headers=headers,
    )
    login = start(client, headers)
    sent = send(
        client,
        headers,
        login["authentication_id"],
        method="email",
        link_url="https://app.example/verify-email?from=mail",
    )
    assert sent.status_code == 201, sent.text
    text = messages(container)[-1]["text"]
    link = next(line for line in text.splitlines() if line.startswith("https://"))
    url = urlsplit(link)
    assert (url.netloc, url.path) == ("app.example", "/verify-email")
    query = parse_qs(url.query)
    assert query["from"] == ["mail"] and query["authentication_id"] == [login["authentication_id"]]
    response = verify(client, headers, login["authentication_id"], query["code"][0], "email")
    assert response.status_code == 200 and response.json()["status"] == "satisfied"
    refused = send(client, headers, login["authentication_id"], method="email", link_url="ftp://x")
    assert refused.status_code in (400, 422)


def test_twilio_sends_and_its_signed_status_callback_is_recorded(
    client, headers, container, httpserver, monkeypatch
) -> None:
    import base64
    import hashlib
    import hmac

    monkeypatch.setenv("TESSERA_SMS_PROVIDERS", "twilio")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "twilio-test-token")
    monkeypatch.setenv("TWILIO_FROM", "+15005550006")
    monkeypatch.setenv("TWILIO_BASE_URL", httpserver.url_for("/"))
    sent: list[dict[str, str]] = []

    def messages_api(request):  # type: ignore[no-untyped-def]
        from werkzeug import Response

        sent.append(dict(request.form))
        return Response(
            json.dumps({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}),
            status=201,
            content_type="application/json",
        )

    httpserver.expect_request(
        "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json", method="POST"
    ).respond_with_handler(messages_api)
    response = client.post(
        "/v1/users/alice/enrolments",
        json={"method": "sms", "phone_number": MOBILE},
        headers=headers,
    )
    assert response.status_code == 201 and response.json()["code_sent"]["provider"] == "twilio"
    callback_url = "http://localhost:8000/v1/providers/twilio/status"  # TESSERA_ISSUER + path
    assert sent[0]["To"] == MOBILE and sent[0]["StatusCallback"] == callback_url

    form = {"MessageSid": "SM0123456789abcdef0123456789abcdef", "MessageStatus": "delivered"}
    signed = callback_url + "".join(k + form[k] for k in sorted(form))
    signature = base64.b64encode(
        hmac.new(b"twilio-test-token", signed.encode(), hashlib.sha1).digest()
    ).decode()
    forged = client.post(
        "/v1/providers/twilio/status", data=form, headers={"X-Twilio-Signature": "AAAA"}
    )
    assert forged.status_code == 401
    accepted = client.post(
        "/v1/providers/twilio/status", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert accepted.status_code == 204, accepted.text
    delivery_id = response.json()["code_sent"]["delivery_id"]
    assert topics(container, delivery_id) == ["Requested", "Attempted", "StatusReported"]
