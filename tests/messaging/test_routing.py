"""Routing, failover and circuit breakers, with Twilio and Vonage answering from local servers."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from adapters.messaging.base import Accepted, ProviderError
from adapters.messaging.console import ConsoleProvider
from adapters.messaging.routing import (
    CircuitBreaker,
    RoutedCodeSender,
    RoutingRule,
    rules_from_json,
)
from adapters.messaging.templates import Rendered, TemplateCatalogue
from adapters.messaging.twilio import TwilioProvider
from adapters.messaging.vonage import VonageProvider
from application.ports import OutboundCode
from tests.messaging.conftest import CODE, FakeMonotonic, message, wait_for_requests

SID = "AC" + "1" * 32
MESSAGES = f"/2010-04-01/Accounts/{SID}/Messages.json"
VONAGE_OK = {"message-count": "1", "messages": [{"status": "0", "message-id": "VON-1"}]}


def twilio(api: HTTPServer, read_timeout: float = 0.5) -> TwilioProvider:
    return TwilioProvider(
        account_sid=SID,
        auth_token="token-not-real",
        from_number="+15005550006",
        base_url=api.url_for("/"),
        connect_timeout=0.5,
        read_timeout=read_timeout,
    )


def vonage(api: HTTPServer) -> VonageProvider:
    return VonageProvider(
        api_key="key", api_secret="secret-not-real", from_="Acme", sms_base_url=api.url_for("/")
    )


def sender(
    providers: list[object],
    catalogue: TemplateCatalogue,
    monotonic: FakeMonotonic,
    **kwargs: object,
) -> RoutedCodeSender:
    return RoutedCodeSender(
        providers,  # type: ignore[arg-type]
        templates=catalogue,
        failure_threshold=3,
        cooldown_seconds=30,
        monotonic=monotonic,
        **kwargs,  # type: ignore[arg-type]
    )


class FakeProvider:
    """Answers from a script: an Accepted id, a ProviderError, or any exception to raise."""

    def __init__(self, name: str, *outcomes: object, channels: set[str] | None = None) -> None:
        self.name = name
        self.channels = frozenset(channels or {"sms", "voice"})
        self.outcomes = list(outcomes)
        self.sent: list[tuple[OutboundCode, Rendered]] = []

    def send(self, message: OutboundCode, content: Rendered) -> Accepted:
        self.sent.append((message, content))
        outcome = self.outcomes.pop(0) if self.outcomes else f"{self.name}-id"
        if isinstance(outcome, BaseException):
            raise outcome
        return Accepted(str(outcome))


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (Response('{"code": 20500, "message": "Internal"}', status=500), "HTTP 500"),
        (Response("<html>bad gateway</html>", status=502), "HTTP 502"),
        (Response("{oops", status=201, content_type="application/json"), "not JSON"),
        (Response('{"code": 21610, "message": "Unsubscribed"}', status=400), "HTTP 400"),
    ],
)
def test_a_failing_first_provider_hands_the_message_to_the_next(
    api: HTTPServer,
    api2: HTTPServer,
    catalogue: TemplateCatalogue,
    monotonic: FakeMonotonic,
    failure: Response,
    reason: str,
) -> None:
    api.expect_request(MESSAGES).respond_with_response(failure)
    api2.expect_request("/sms/json").respond_with_json(VONAGE_OK)
    report = sender([twilio(api), vonage(api2)], catalogue, monotonic).send(message(locale="it"))
    first, second = report.attempts
    assert (first.provider, first.accepted) == ("twilio", False)
    assert first.error is not None and reason in first.error
    assert report.accepted_by == second
    assert (second.provider, second.provider_message_id) == ("vonage", "VON-1")
    assert api2.log[0][0].form["text"] == catalogue.sms("it", code=CODE, issuer="Acme", minutes=10)


def test_a_timeout_fails_over_without_waiting_for_the_slow_provider(
    api: HTTPServer, api2: HTTPServer, catalogue: TemplateCatalogue, monotonic: FakeMonotonic
) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.8)
        return Response(json.dumps({"sid": "SM-late"}), status=201)

    api.expect_request(MESSAGES).respond_with_handler(slow)
    api2.expect_request("/sms/json").respond_with_json(VONAGE_OK)
    started = time.monotonic()
    report = sender([twilio(api, read_timeout=0.2), vonage(api2)], catalogue, monotonic).send(
        message()
    )
    assert time.monotonic() - started < 0.7
    assert [a.provider for a in report.attempts] == ["twilio", "vonage"]
    assert report.attempts[0].error is not None and "timed out" in report.attempts[0].error
    assert report.accepted_by is not None and report.accepted_by.provider == "vonage"
    wait_for_requests(api, 1)  # the slow answer lands in this test's log, not the next one's


def test_the_breaker_opens_after_consecutive_faults_then_a_half_open_probe_recovers(
    api: HTTPServer, api2: HTTPServer, catalogue: TemplateCatalogue, monotonic: FakeMonotonic
) -> None:
    api.expect_ordered_request(MESSAGES).respond_with_data("down", status=503)
    api.expect_ordered_request(MESSAGES).respond_with_data("down", status=503)
    api.expect_ordered_request(MESSAGES).respond_with_data("down", status=503)
    api.expect_ordered_request(MESSAGES).respond_with_json({"sid": "SM-back"}, status=201)
    api.expect_ordered_request(MESSAGES).respond_with_json({"sid": "SM-again"}, status=201)
    api2.expect_request("/sms/json").respond_with_json(VONAGE_OK)
    routed = sender([twilio(api), vonage(api2)], catalogue, monotonic)
    breaker = routed.breakers["twilio"]

    for i in range(3):
        report = routed.send(message(message_id=f"m{i}"))
        assert report.accepted_by is not None and report.accepted_by.provider == "vonage"
    assert breaker.state == "open"

    skipped = routed.send(message(message_id="m3"))
    assert skipped.attempts[0].provider == "twilio"
    assert skipped.attempts[0].error == "circuit open"
    assert skipped.accepted_by is not None and skipped.accepted_by.provider == "vonage"
    assert len(api.log) == 3  # an open breaker sends nothing to the provider

    monotonic.advance(29)
    assert breaker.state == "open"
    monotonic.advance(1)
    assert breaker.state == "half_open"
    probe = routed.send(message(message_id="m4"))
    assert probe.accepted_by is not None
    assert (probe.accepted_by.provider, probe.accepted_by.provider_message_id) == (
        "twilio",
        "SM-back",
    )
    assert breaker.state == "closed"
    after = routed.send(message(message_id="m5"))
    assert after.accepted_by is not None and after.accepted_by.provider_message_id == "SM-again"
    assert len(api2.log) == 4


def test_a_failed_half_open_probe_reopens_the_breaker(
    api: HTTPServer, api2: HTTPServer, catalogue: TemplateCatalogue, monotonic: FakeMonotonic
) -> None:
    api.expect_request(MESSAGES).respond_with_data("down", status=503)
    api2.expect_request("/sms/json").respond_with_json(VONAGE_OK)
    routed = sender([twilio(api), vonage(api2)], catalogue, monotonic)
    for i in range(3):
        routed.send(message(message_id=f"m{i}"))
    monotonic.advance(31)
    probe = routed.send(message(message_id="probe"))
    assert probe.attempts[0].error == "HTTP 503"
    assert routed.breakers["twilio"].state == "open"
    after = routed.send(message(message_id="after"))
    assert after.attempts[0].error == "circuit open"
    assert len(api.log) == 4


def test_refusals_of_one_message_fail_over_but_do_not_open_the_breaker(
    catalogue: TemplateCatalogue, monotonic: FakeMonotonic
) -> None:
    refusing = FakeProvider(
        "twilio", *[ProviderError("HTTP 400 error 21211", provider_fault=False)] * 5
    )
    backup = FakeProvider("vonage")
    routed = sender([refusing, backup], catalogue, monotonic)
    for i in range(5):
        assert routed.send(message(message_id=str(i))).accepted_by is not None
    assert routed.breakers["twilio"].state == "closed"
    assert len(refusing.sent) == 5


def test_when_every_provider_fails_every_attempt_is_reported_and_nothing_raises(
    catalogue: TemplateCatalogue, monotonic: FakeMonotonic
) -> None:
    routed = sender(
        [
            FakeProvider("twilio", ProviderError("HTTP 503")),
            FakeProvider("vonage", ProviderError("status 1: Throttled")),
            FakeProvider("webhook", ProviderError("timed out (ReadTimeout)")),
        ],
        catalogue,
        monotonic,
    )
    report = routed.send(message())
    assert report.accepted_by is None
    assert [(a.provider, a.error) for a in report.attempts] == [
        ("twilio", "HTTP 503"),
        ("vonage", "status 1: Throttled"),
        ("webhook", "timed out (ReadTimeout)"),
    ]


def test_a_providers_bug_is_a_failed_attempt_that_names_no_secret(
    catalogue: TemplateCatalogue, monotonic: FakeMonotonic
) -> None:
    buggy = FakeProvider("twilio", KeyError(f"code {CODE}"))
    routed = sender([buggy, FakeProvider("vonage")], catalogue, monotonic)
    report = routed.send(message())
    assert report.attempts[0].error == "unexpected KeyError"
    assert report.accepted_by is not None and report.accepted_by.provider == "vonage"


def test_nothing_is_lost_when_the_primary_fails_every_other_time(
    api: HTTPServer, api2: HTTPServer, catalogue: TemplateCatalogue, monotonic: FakeMonotonic
) -> None:
    answers = iter(range(1000))

    def flaky(request: Request) -> Response:
        n = next(answers)
        if n % 2:
            return Response("busy", status=503)
        return Response(json.dumps({"sid": f"SM{n}"}), status=201, content_type="application/json")

    api.expect_request(MESSAGES).respond_with_handler(flaky)
    api2.expect_request("/sms/json").respond_with_json(VONAGE_OK)
    routed = sender([twilio(api), vonage(api2)], catalogue, monotonic)
    reports = [routed.send(message(message_id=f"m{i}")) for i in range(20)]
    assert all(r.accepted_by is not None for r in reports)
    by_twilio = sum(r.accepted_by.provider == "twilio" for r in reports if r.accepted_by)
    by_vonage = sum(r.accepted_by.provider == "vonage" for r in reports if r.accepted_by)
    assert by_twilio + by_vonage == 20
    assert by_vonage == sum(len(r.attempts) == 2 for r in reports) == len(api2.log)
    assert routed.breakers["twilio"].state == "closed"  # never three faults in a row


def test_rules_route_by_region_carrier_and_channel_first_match_wins(
    tmp_path: Path, catalogue: TemplateCatalogue, monotonic: FakeMonotonic
) -> None:
    providers = [
        FakeProvider("twilio"),
        FakeProvider("vonage", channels={"sms"}),
        FakeProvider("webhook"),
        ConsoleProvider(tmp_path / "messages.log"),
    ]
    rules = rules_from_json(
        json.dumps(
            [
                {"channels": ["email"], "providers": ["console"]},
                {"regions": ["de", "AT"], "providers": ["vonage", "twilio"]},
                {"carriers": ["vodafone"], "channels": ["sms"], "providers": ["webhook"]},
                {"regions": ["IN"], "carriers": ["Jio"], "providers": ["webhook", "vonage"]},
            ]
        )
    )
    routed = sender(
        providers, catalogue, monotonic, rules=rules, default_order=["twilio", "vonage"]
    )
    assert routed.order(message(region="DE")) == ["vonage", "twilio"]
    assert routed.order(message(region="DE", channel="voice")) == ["twilio"]  # vonage: SMS only
    assert routed.order(message(region="GB", carrier="Vodafone UK")) == ["twilio", "vonage"]
    assert routed.order(message(region="GB", carrier="VODAFONE")) == ["webhook"]
    assert routed.order(message(region="IN", carrier="Jio")) == ["webhook", "vonage"]
    assert routed.order(message(region="IN", carrier="Airtel")) == ["twilio", "vonage"]
    assert routed.order(message(region=None, carrier=None)) == ["twilio", "vonage"]
    email = message(channel="email", to="a@example.com", region=None, carrier=None)
    assert routed.order(email) == ["console"]
    report = routed.send(email)
    assert report.accepted_by is not None and report.accepted_by.provider == "console"


def test_email_never_reaches_an_sms_provider(
    catalogue: TemplateCatalogue, monotonic: FakeMonotonic
) -> None:
    sms_only = FakeProvider("twilio")
    routed = sender([sms_only], catalogue, monotonic)
    report = routed.send(message(channel="email", to="a@example.com"))
    assert not sms_only.sent
    assert report.attempts[0].provider == "none"
    assert report.attempts[0].error == "no provider carries email"


def test_the_message_is_rendered_in_its_locale_with_the_webotp_line(
    catalogue: TemplateCatalogue, monotonic: FakeMonotonic
) -> None:
    provider = FakeProvider("twilio")
    routed = sender([provider], catalogue, monotonic, webotp_domain="login.acme.example")
    routed.send(message(locale="pl"))
    content = provider.sent[0][1]
    assert content.locale == "pl" and "kod weryfikacyjny" in content.text
    assert content.text.endswith(f"\n\n@login.acme.example #{CODE}")


def test_failures_are_logged_without_the_code(
    catalogue: TemplateCatalogue, monotonic: FakeMonotonic
) -> None:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("tessera.messaging")
    handler = Keep()
    logger.addHandler(handler)
    try:
        failing = FakeProvider("twilio", *[ProviderError("HTTP 503")] * 3)
        routed = sender([failing, FakeProvider("vonage")], catalogue, monotonic)
        for i in range(3):
            routed.send(message(message_id=f"m{i}"))
    finally:
        logger.removeHandler(handler)
    assert any("not taken by twilio: HTTP 503" in r for r in records)
    assert any("circuit breaker opened" in r for r in records)
    assert not any(CODE in r for r in records)


@pytest.mark.parametrize(
    ("rules", "error"),
    [
        ('{"providers": ["a"]}', "JSON list"),
        ('[{"providers": []}]', "at least one provider"),
        ('[{"providers": ["twilio"], "region": ["DE"]}]', "unknown routing rule keys"),
        ('[{"providers": ["twilio"], "channels": ["fax"]}]', "channels"),
        ('[{"providers": ["twilio"], "regions": "DE"}]', "list of non-empty strings"),
    ],
)
def test_malformed_rules_are_refused(rules: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        rules_from_json(rules)


def test_rules_must_name_configured_providers(
    catalogue: TemplateCatalogue, monotonic: FakeMonotonic
) -> None:
    with pytest.raises(ValueError, match="unknown providers"):
        sender(
            [FakeProvider("twilio")],
            catalogue,
            monotonic,
            rules=[RoutingRule(("vonage",))],
        )


def test_only_one_half_open_probe_at_a_time(monotonic: FakeMonotonic) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_seconds=10, monotonic=monotonic)
    assert breaker.failure() is True
    assert not breaker.allow()
    monotonic.advance(10)
    assert breaker.allow() is True
    assert breaker.allow() is False  # a second message while the probe is out is skipped
    breaker.success()
    assert breaker.allow() and breaker.state == "closed"
