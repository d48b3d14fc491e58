"""Webhook signing, back-off, URL rules and the host allow-list: pure functions, no I/O."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from application.webhooks import (
    MAX_ATTEMPTS,
    MAX_DELAY_SECONDS,
    backoff,
    host_allowed,
    sign,
    verify_signature,
)
from domain.webhook import InvalidWebhookError, WebhookSubscription

SECRET = "whsec_" + "ab" * 32
BODY = b'{"id":"d1","type":"lockout"}'


def test_the_signature_is_an_hmac_sha256_over_the_timestamp_a_dot_and_the_body() -> None:
    header = sign(SECRET, BODY, timestamp=1_700_000_000)
    expected = hmac.new(
        SECRET.encode(), b"1700000000." + BODY, digestmod=hashlib.sha256
    ).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_a_receiver_accepts_a_fresh_signature_and_refuses_stale_altered_or_foreign_ones() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    header = sign(SECRET, BODY, timestamp=int(now.timestamp()))
    assert verify_signature(SECRET, header, BODY, now=now)
    assert verify_signature(SECRET, header, BODY, now=now + timedelta(seconds=299))
    assert not verify_signature(SECRET, header, BODY, now=now + timedelta(seconds=301))
    assert not verify_signature(SECRET, header, BODY + b" ", now=now)
    assert not verify_signature("whsec_other", header, BODY, now=now)
    assert not verify_signature(SECRET, "v1=" + header.split("v1=")[1], BODY, now=now)


def test_back_off_doubles_from_one_second_and_stops_at_an_hour_over_about_a_day() -> None:
    assert [backoff(n).total_seconds() for n in range(1, 6)] == [1, 2, 4, 8, 16]
    assert backoff(12).total_seconds() == 2048
    assert backoff(13).total_seconds() == MAX_DELAY_SECONDS
    assert backoff(1000).total_seconds() == MAX_DELAY_SECONDS
    total = sum(backoff(n).total_seconds() for n in range(1, MAX_ATTEMPTS))
    assert 23 * 3600 < total < 25 * 3600


def test_the_allow_list_matches_exact_hosts_and_wildcard_subdomains_only() -> None:
    allowed = ("127.0.0.1", "*.example.com")
    assert host_allowed("http://127.0.0.1:8080/x", allowed)
    assert host_allowed("https://hooks.example.com/x", allowed)
    assert host_allowed("https://HOOKS.Example.com./x", allowed)
    assert not host_allowed("https://example.com.evil.net/x", allowed)
    assert not host_allowed("https://evilexample.com/x", allowed)
    assert not host_allowed("http://10.0.0.1/x", allowed)
    assert host_allowed("http://10.0.0.1/x", None)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "https://",
        "https://user:pass@example.com/x",
        "https://example.com/x#frag",
        "https://exa mple.com/",
        "https://example.com:0/",
        "https://example.com:99999/",
        "javascript:alert(1)",
        "https://ex\u00e4mple.com/",
    ],
)
def test_a_subscription_refuses_urls_that_are_not_plain_http_or_https(url: str) -> None:
    with pytest.raises(InvalidWebhookError):
        _create(url=url)


def test_a_subscription_needs_known_event_types_and_deleting_twice_records_once() -> None:
    with pytest.raises(InvalidWebhookError):
        _create(events=[])
    with pytest.raises(InvalidWebhookError):
        _create(events=["enrolment.exploded"])
    subscription = _create(events=["lockout", "lockout", "enrolment.added"])
    assert subscription.events == ["enrolment.added", "lockout"]
    now = datetime(2026, 11, 28, tzinfo=UTC)
    subscription.delete(by="key:x", at=now)
    subscription.delete(by="key:x", at=now)
    kinds = [type(e).__name__ for e in subscription.collect_events()]
    assert kinds == ["Created", "Deleted"]


def _create(
    url: str = "https://example.com/hook", events: list[str] | None = None
) -> WebhookSubscription:
    return WebhookSubscription.create(
        webhook_id=uuid4(),
        org_id=uuid4(),
        url=url,
        events=["lockout"] if events is None else events,
        description=None,
        secret_ref="tsv1.sealed",
        by="key:x",
        at=datetime(2026, 11, 28, tzinfo=UTC),
    )
