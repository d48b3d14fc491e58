"""The signed-webhook provider and the console file (the embedded default)."""

from __future__ import annotations

import json
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from adapters.messaging.base import ProviderError
from adapters.messaging.console import ConsoleProvider
from adapters.messaging.templates import TemplateCatalogue
from adapters.messaging.webhook import SignedWebhookProvider
from application.webhooks import verify_signature
from tests.fakes import FakeClock
from tests.messaging.conftest import CODE, message

SECRET = "whsec_" + "ab" * 32
NOW = 1_800_000_000


def webhook(api: HTTPServer) -> SignedWebhookProvider:
    return SignedWebhookProvider(
        url=api.url_for("/gateway"), secret=SECRET, read_timeout=0.5, now=lambda: NOW
    )


def test_the_webhook_posts_signed_json_that_tesseras_verifier_accepts(
    api: HTTPServer, catalogue: TemplateCatalogue
) -> None:
    api.expect_request("/gateway", method="POST").respond_with_data("", status=204)
    sms = message(locale="nl", message_id="m-7")
    result = webhook(api).send(sms, catalogue.render(sms))
    assert result.provider_message_id == "m-7"
    request = api.log[0][0]
    body = request.get_data()
    assert json.loads(body) == {
        "message_id": "m-7",
        "channel": "sms",
        "to": "+447400123456",
        "text": catalogue.sms("nl", code=CODE, issuer="Acme", minutes=10),
        "locale": "nl",
    }
    header = request.headers["Tessera-Signature"]
    assert header.startswith(f"t={NOW},v1=")
    now = datetime.fromtimestamp(NOW, UTC)
    assert verify_signature(SECRET, header, body, now=now)
    assert not verify_signature(SECRET, header, body.replace(b"m-7", b"m-8"), now=now)
    assert not verify_signature("whsec_other", header, body, now=now)


def test_the_gateways_own_id_is_used_when_it_answers_with_one(
    api: HTTPServer, catalogue: TemplateCatalogue
) -> None:
    api.expect_request("/gateway").respond_with_json({"id": "gw-1"}, status=202)
    sms = message()
    assert webhook(api).send(sms, catalogue.render(sms)).provider_message_id == "gw-1"


@pytest.mark.parametrize(
    ("response", "fault"),
    [
        (Response("nope", status=400), False),
        (Response("down", status=503), True),
        (Response("<html>", status=200, content_type="text/html"), True),
    ],
)
def test_anything_but_a_clean_2xx_is_an_error(
    api: HTTPServer, catalogue: TemplateCatalogue, response: Response, fault: bool
) -> None:
    api.expect_request("/gateway").respond_with_response(response)
    sms = message()
    with pytest.raises(ProviderError) as caught:
        webhook(api).send(sms, catalogue.render(sms))
    assert caught.value.provider_fault is fault
    assert SECRET not in caught.value.reason


def test_the_console_appends_one_json_line_per_message_to_a_private_file(
    tmp_path: Path, catalogue: TemplateCatalogue
) -> None:
    path = tmp_path / "home" / "messages.log"
    clock = FakeClock(datetime(2026, 11, 28, 9, 0, tzinfo=UTC))
    console = ConsoleProvider(path, clock=clock)
    sms = message(locale="ja", message_id="m-1")
    email = message(channel="email", to="alice@example.com", locale="fr", message_id="m-2")
    assert console.send(sms, catalogue.render(sms)).provider_message_id == "m-1"
    console.send(email, catalogue.render(email))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first, second = (json.loads(line) for line in path.read_text("utf-8").splitlines())
    assert first == {
        "time": "2026-11-28T09:00:00+00:00",
        "channel": "sms",
        "to": "+447400123456",
        "text": catalogue.sms("ja", code=CODE, issuer="Acme", minutes=10),
        "provider": "console",
        "message_id": "m-1",
        "locale": "ja",
    }
    assert second["subject"] == "Votre code de vérification pour Acme"
    assert CODE in second["text"]


def test_concurrent_console_writes_never_interleave(
    tmp_path: Path, catalogue: TemplateCatalogue
) -> None:
    console = ConsoleProvider(tmp_path / "messages.log")
    content = catalogue.render(message(locale="ar"))

    def send(i: int) -> None:
        for j in range(25):
            console.send(message(message_id=f"{i}-{j}"), content)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = (tmp_path / "messages.log").read_text("utf-8").splitlines()
    assert sorted(json.loads(line)["message_id"] for line in lines) == sorted(
        f"{i}-{j}" for i in range(4) for j in range(25)
    )


def test_an_unwritable_console_file_is_a_provider_error(
    tmp_path: Path, catalogue: TemplateCatalogue
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    console = ConsoleProvider(blocker / "messages.log")
    sms = message()
    with pytest.raises(ProviderError, match="cannot write"):
        console.send(sms, catalogue.render(sms))
