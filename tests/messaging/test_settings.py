"""The code sender and callback verifier built from environment variables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from joserfc.jwk import RSAKey

from adapters.messaging.settings import build_code_sender, build_delivery_callbacks
from tests.fakes import FakeClock
from tests.messaging.conftest import message


def test_with_no_settings_every_channel_goes_to_the_console_file(tmp_path: Path) -> None:
    sender = build_code_sender({}, home=tmp_path, clock=FakeClock())
    assert sender.order(message()) == ["console"]
    assert sender.order(message(channel="email", to="a@example.com")) == ["console"]
    report = sender.send(message())
    assert report.accepted_by is not None
    line = json.loads((tmp_path / "messages.log").read_text())
    assert line["provider"] == "console"


def test_providers_routes_and_email_come_from_the_environment(
    tmp_path: Path, rsa_key: RSAKey
) -> None:
    key_path = tmp_path / "vonage.pem"
    key_path.write_bytes(rsa_key.as_pem(private=True))
    env = {
        "TESSERA_SMS_PROVIDERS": "twilio, vonage",
        "TESSERA_EMAIL_PROVIDERS": "smtp,console",
        "TESSERA_MESSAGING_ROUTES": json.dumps([{"regions": ["DE"], "providers": ["vonage"]}]),
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "not-real",
        "TWILIO_FROM": "+15005550006",
        "TWILIO_BASE_URL": "http://127.0.0.1:9",
        "VONAGE_API_KEY": "k",
        "VONAGE_API_SECRET": "not-real",
        "VONAGE_FROM": "Acme",
        "VONAGE_VOICE_FROM": "+447700900000",
        "VONAGE_APPLICATION_ID": "app",
        "VONAGE_PRIVATE_KEY_PATH": str(key_path),
        "VONAGE_SMS_BASE_URL": "http://127.0.0.1:9",
        "VONAGE_VOICE_BASE_URL": "http://127.0.0.1:9",
        "TESSERA_SMTP_HOST": "127.0.0.1",
        "TESSERA_SMTP_SENDER": "codes@acme.example",
        "TESSERA_WEBOTP_DOMAIN": "login.acme.example",
    }
    sender = build_code_sender(env, home=tmp_path, clock=FakeClock())
    assert sender.order(message(region="GB")) == ["twilio", "vonage"]
    assert sender.order(message(region="DE")) == ["vonage"]
    assert sender.order(message(channel="voice", region="GB")) == ["twilio", "vonage"]
    assert sender.order(message(channel="email", region=None)) == ["smtp", "console"]
    report = sender.send(message(region="GB"))  # nothing listens on port 9: both fail, no raise
    assert [a.provider for a in report.attempts] == ["twilio", "vonage"]
    assert all(a.error and "could not connect" in a.error for a in report.attempts)
    sender.close()


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"TESSERA_SMS_PROVIDERS": "carrier-pigeon"}, "unknown messaging providers"),
        ({"TESSERA_SMS_PROVIDERS": "twilio", "TWILIO_ACCOUNT_SID": "AC1"}, "TWILIO_AUTH_TOKEN"),
        ({"TESSERA_EMAIL_PROVIDERS": "smtp"}, "TESSERA_SMTP_HOST"),
    ],
)
def test_missing_or_unknown_settings_are_named(
    tmp_path: Path, env: dict[str, str], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        build_code_sender(env, home=tmp_path, clock=FakeClock())


def test_callbacks_are_verified_for_the_providers_with_secrets() -> None:
    callbacks = build_delivery_callbacks(
        {"TWILIO_AUTH_TOKEN": "t", "TESSERA_SMS_WEBHOOK_SECRET": "s"}, clock=FakeClock()
    )
    from application.ports import InvalidCallbackError

    with pytest.raises(InvalidCallbackError, match="no callback verification"):
        callbacks.parse("vonage", url="https://x", headers={}, body=b"")
