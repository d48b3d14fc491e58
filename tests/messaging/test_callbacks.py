"""Signed delivery callbacks: published vectors, real-shaped callbacks, tampering and replays."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from adapters.messaging.callbacks import (
    SignedDeliveryCallbacks,
    twilio_signature,
    vonage_signature,
)
from application.ports import DeliveryStatus, InvalidCallbackError
from application.webhooks import sign
from tests.fakes import FakeClock

TWILIO_TOKEN = "twilio-token-not-real"
VONAGE_SECRET = "vonage-signature-secret-not-real"
WEBHOOK_SECRET = "whsec_" + "cd" * 32
NOW = 1_800_000_000
URL = "https://tessera.example/v1/delivery-callbacks/twilio"


@pytest.fixture
def callbacks() -> SignedDeliveryCallbacks:
    return SignedDeliveryCallbacks(
        twilio_auth_token=TWILIO_TOKEN,
        vonage_signature_secret=VONAGE_SECRET,
        webhook_secrets={"webhook": WEBHOOK_SECRET},
        clock=FakeClock(datetime.fromtimestamp(NOW, UTC)),
    )


def test_twilio_signatures_match_twilios_published_vectors() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ]
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert twilio_signature("12345", url, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_vonage_md5hash_signatures_match_the_vonage_sdks_vector() -> None:
    params = {"a": "1", "b": "2", "timestamp": "1461605396"}
    assert (
        vonage_signature("secret", params, method="md5hash") == "6af838ef94998832dbfc29020b564830"
    )


def twilio_callback(**fields: str) -> tuple[dict[str, str], bytes]:
    params = {
        "AccountSid": "AC" + "0" * 32,
        "From": "+15005550006",
        "To": "+447400123456",
        "MessageSid": "SM0123456789abcdef0123456789abcdef",
        "SmsSid": "SM0123456789abcdef0123456789abcdef",
        "MessageStatus": "delivered",
        "ApiVersion": "2010-04-01",
    } | fields
    signature = twilio_signature(TWILIO_TOKEN, URL, sorted(params.items()))
    return {"X-Twilio-Signature": signature}, urlencode(params).encode()


def test_a_signed_twilio_message_callback_is_read(callbacks: SignedDeliveryCallbacks) -> None:
    headers, body = twilio_callback()
    assert callbacks.parse("twilio", url=URL, headers=headers, body=body) == DeliveryStatus(
        "twilio", "SM0123456789abcdef0123456789abcdef", "delivered", None
    )


def test_twilio_failures_and_call_statuses_are_mapped(callbacks: SignedDeliveryCallbacks) -> None:
    headers, body = twilio_callback(MessageStatus="undelivered", ErrorCode="30003")
    status = callbacks.parse("twilio", url=URL, headers=headers, body=body)
    assert (status.status, status.error_code) == ("undelivered", "30003")
    call = {"CallSid": "CA1", "CallStatus": "no-answer", "AccountSid": "AC1"}
    signed = twilio_signature(TWILIO_TOKEN, URL, sorted(call.items()))
    status = callbacks.parse(
        "twilio", url=URL, headers={"x-twilio-signature": signed}, body=urlencode(call).encode()
    )
    assert (status.provider_message_id, status.status) == ("CA1", "undelivered")


def test_a_twilio_callback_signed_for_the_url_with_its_default_port_verifies(
    callbacks: SignedDeliveryCallbacks,
) -> None:
    params = {"MessageSid": "SM1", "MessageStatus": "sent"}
    signature = twilio_signature(
        TWILIO_TOKEN, URL.replace(".example/", ".example:443/"), sorted(params.items())
    )
    status = callbacks.parse(
        "twilio",
        url=URL,
        headers={"X-Twilio-Signature": signature},
        body=urlencode(params).encode(),
    )
    assert status.status == "sent"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b.replace(b"delivered", b"failed")),
        lambda h, b: (h, b + b"&Extra=1"),
        lambda h, b: ({"X-Twilio-Signature": "A" + h["X-Twilio-Signature"][1:]}, b),
        lambda h, b: ({}, b),
    ],
)
def test_a_tampered_or_unsigned_twilio_callback_is_refused(
    callbacks: SignedDeliveryCallbacks, tamper: object
) -> None:
    headers, body = twilio_callback()
    headers, body = tamper(headers, body)  # type: ignore[operator]
    with pytest.raises(InvalidCallbackError):
        callbacks.parse("twilio", url=URL, headers=headers, body=body)


def test_a_twilio_callback_for_another_url_is_refused(callbacks: SignedDeliveryCallbacks) -> None:
    headers, body = twilio_callback()
    with pytest.raises(InvalidCallbackError, match="does not verify"):
        callbacks.parse("twilio", url=URL + "?x=1", headers=headers, body=body)


def vonage_receipt(method: str = "sha256", **fields: str) -> dict[str, str]:
    params = {
        "msisdn": "447400123456",
        "to": "Acme",
        "network-code": "23420",
        "messageId": "0A0000000123ABCD1",
        "price": "0.03330000",
        "status": "delivered",
        "scts": "2001011400",
        "err-code": "0",
        "api-key": "abcd1234",
        "client-ref": "m-1",
        "message-timestamp": "2027-01-15 08:00:00",
        "timestamp": str(NOW - 10),
        "nonce": "aaaa-bbbb",
    } | fields
    params["sig"] = vonage_signature(VONAGE_SECRET, params, method=method)
    return params


def test_a_signed_vonage_receipt_in_the_query_string_is_read(
    callbacks: SignedDeliveryCallbacks,
) -> None:
    url = "https://tessera.example/v1/delivery-callbacks/vonage?" + urlencode(vonage_receipt())
    status = callbacks.parse("vonage", url=url, headers={}, body=b"")
    assert status == DeliveryStatus("vonage", "0A0000000123ABCD1", "delivered", None)


def test_a_signed_vonage_receipt_as_json_or_form_is_read(
    callbacks: SignedDeliveryCallbacks,
) -> None:
    receipt = vonage_receipt(status="rejected", **{"err-code": "6"})
    url = "https://tessera.example/v1/delivery-callbacks/vonage"
    as_json = callbacks.parse(
        "vonage",
        url=url,
        headers={"Content-Type": "application/json"},
        body=json.dumps(receipt).encode(),
    )
    as_form = callbacks.parse(
        "vonage",
        url=url,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=urlencode(receipt).encode(),
    )
    assert as_json == as_form == DeliveryStatus("vonage", "0A0000000123ABCD1", "failed", "6")


def test_values_with_ampersands_are_signed_the_vonage_way(
    callbacks: SignedDeliveryCallbacks,
) -> None:
    receipt = vonage_receipt(**{"client-ref": "a&b=c"})
    url = "https://tessera.example/cb?" + urlencode(receipt)
    assert callbacks.parse("vonage", url=url, headers={}, body=b"").status == "delivered"


def test_the_md5hash_method_can_be_chosen() -> None:
    callbacks = SignedDeliveryCallbacks(
        vonage_signature_secret=VONAGE_SECRET,
        vonage_signature_method="md5hash",
        clock=FakeClock(datetime.fromtimestamp(NOW, UTC)),
    )
    url = "https://tessera.example/cb?" + urlencode(vonage_receipt("md5hash"))
    assert callbacks.parse("vonage", url=url, headers={}, body=b"").status == "delivered"
    sha = "https://tessera.example/cb?" + urlencode(vonage_receipt("sha256"))
    with pytest.raises(InvalidCallbackError):
        callbacks.parse("vonage", url=sha, headers={}, body=b"")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"status": "failed"}, "does not verify"),
        ({"sig": "0" * 64}, "does not verify"),
        ({"sig": ""}, "not signed"),
    ],
)
def test_a_tampered_vonage_receipt_is_refused(
    callbacks: SignedDeliveryCallbacks, change: dict[str, str], error: str
) -> None:
    receipt = vonage_receipt() | change
    url = "https://tessera.example/cb?" + urlencode(receipt)
    with pytest.raises(InvalidCallbackError, match=error):
        callbacks.parse("vonage", url=url, headers={}, body=b"")


def test_a_replayed_old_vonage_receipt_is_refused(callbacks: SignedDeliveryCallbacks) -> None:
    url = "https://tessera.example/cb?" + urlencode(vonage_receipt(timestamp=str(NOW - 301)))
    with pytest.raises(InvalidCallbackError, match="stale"):
        callbacks.parse("vonage", url=url, headers={}, body=b"")


def webhook_callback(payload: dict[str, object], *, at: int = NOW) -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    return {"Tessera-Signature": sign(WEBHOOK_SECRET, body, timestamp=at)}, body


def test_a_signed_webhook_provider_callback_is_read(callbacks: SignedDeliveryCallbacks) -> None:
    headers, body = webhook_callback({"message_id": "gw-1", "status": "failed", "error_code": 17})
    status = callbacks.parse("webhook", url="https://x", headers=headers, body=body)
    assert status == DeliveryStatus("webhook", "gw-1", "failed", "17")


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (webhook_callback({"message_id": "gw-1", "status": "sent"})[0], b'{"message_id":"gw-2"}'),
        (webhook_callback({"message_id": "gw-1", "status": "sent"}, at=NOW - 400)),
        ({}, b'{"message_id": "gw-1", "status": "sent"}'),
        (webhook_callback({"message_id": "gw-1", "status": "lost"})),
        (webhook_callback({"status": "sent"})),
    ],
)
def test_a_bad_webhook_provider_callback_is_refused(
    callbacks: SignedDeliveryCallbacks, headers: dict[str, str], body: bytes
) -> None:
    with pytest.raises(InvalidCallbackError):
        callbacks.parse("webhook", url="https://x", headers=headers, body=body)


def test_a_provider_without_a_secret_is_refused_and_no_secret_is_named() -> None:
    callbacks = SignedDeliveryCallbacks()
    headers, body = twilio_callback()
    with pytest.raises(InvalidCallbackError) as caught:
        callbacks.parse("twilio", url=URL, headers=headers, body=body)
    assert "no callback verification" in str(caught.value)


def test_errors_never_contain_the_secrets(callbacks: SignedDeliveryCallbacks) -> None:
    messages = []
    for provider, body in [("twilio", b"x=1"), ("vonage", b""), ("webhook", b"{}")]:
        with pytest.raises(InvalidCallbackError) as caught:
            callbacks.parse(provider, url="https://x/?sig=1", headers={}, body=body)
        messages.append(str(caught.value))
    for secret in (TWILIO_TOKEN, VONAGE_SECRET, WEBHOOK_SECRET):
        assert not any(secret in m for m in messages)


def _vonage_event(secret: str, body: bytes, *, iat: int = NOW, payload_hash: str | None = None):  # type: ignore[no-untyped-def]
    """A Vonage Voice event as Vonage sends it, signed with PyJWT (an independent library)."""
    import hashlib

    import jwt as pyjwt

    claims = {
        "iat": iat,
        "jti": "3a1f7c5e-1b2c-4d5e-8f90-123456789abc",
        "iss": "Vonage",
        "payload_hash": payload_hash or hashlib.sha256(body).hexdigest(),
        "api_key": "abcd1234",
        "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
    }
    token = pyjwt.encode(claims, secret, algorithm="HS256")
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


CALL = json.dumps(
    {"uuid": "63f61863-4a51-4f6b-86e1-46edebcf9356", "status": "completed", "direction": "outbound"}
).encode()


def test_a_signed_vonage_call_event_is_read(callbacks: SignedDeliveryCallbacks) -> None:
    status = callbacks.parse(
        "vonage", url=URL, headers=_vonage_event(VONAGE_SECRET, CALL), body=CALL
    )
    assert status == DeliveryStatus(
        "vonage", "63f61863-4a51-4f6b-86e1-46edebcf9356", "delivered", None
    )


@pytest.mark.parametrize(
    "case",
    ["wrong secret", "tampered body", "stale", "other hash"],
)
def test_a_vonage_call_event_that_does_not_verify_is_refused(
    callbacks: SignedDeliveryCallbacks, case: str
) -> None:
    headers = {
        "wrong secret": _vonage_event("not-the-secret-0123456789abcdef-0123", CALL),
        "tampered body": _vonage_event(VONAGE_SECRET, CALL),
        "stale": _vonage_event(VONAGE_SECRET, CALL, iat=NOW - 3600),
        "other hash": _vonage_event(VONAGE_SECRET, CALL, payload_hash="00" * 32),
    }[case]
    body = CALL.replace(b"completed", b"failed") if case == "tampered body" else CALL
    with pytest.raises(InvalidCallbackError):
        callbacks.parse("vonage", url=URL, headers=headers, body=body)
