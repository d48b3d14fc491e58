"""The webhook outbox projection on the in-memory store: which events become deliveries, for
whom, and that a batch is applied exactly once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from adapters.persistence import Database
from application.identity import IdentityApplication
from application.projections import ProjectionFollower
from application.webhooks import WebhookOutboxProjection
from domain.authentication import AuthenticationSession
from domain.webhook import WebhookSubscription

AT = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


@pytest.fixture
def app() -> IdentityApplication:
    return IdentityApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


@pytest.fixture
def follower(app: IdentityApplication) -> ProjectionFollower:
    view = Database.from_url("memory://").webhook_outbox()
    return ProjectionFollower(app, WebhookOutboxProjection(view))


def _subscribe(app: IdentityApplication, org_id: UUID, events: list[str]) -> UUID:
    subscription = WebhookSubscription.create(
        webhook_id=uuid4(),
        org_id=org_id,
        url="https://hooks.example.com/x",
        events=events,
        description=None,
        secret_ref="tsv1.sealed",
        by="key:admin",
        at=AT,
    )
    app.save(subscription)
    return subscription.id


def _login(app: IdentityApplication, org_id: UUID, level: str, *, deny: bool = False) -> UUID:
    session = AuthenticationSession.start(
        session_id=uuid4(),
        org_id=org_id,
        user_id="alice",
        context={"ip": "203.0.113.9", "user_agent": "curl"},
        operation=None,
        risk={"score": 80 if level == "high" else 10, "level": level, "reasons": ["new_device"]},
        required_aal=None if deny else 2,
        methods=["totp"],
        primary_factor_verified=True,
        max_attempts=5,
        ttl=timedelta(minutes=5),
        at=AT,
    )
    app.save(session)
    return session.id


def _payloads(follower: ProjectionFollower, webhook_id: UUID) -> list[dict[str, Any]]:
    follower.catch_up()
    view: Any = follower.projection.view
    return [json.loads(d.payload) for d in reversed(view.deliveries(webhook_id, limit=100))]


def test_risky_logins_are_reported_once_and_low_risk_only_when_denied(app, follower) -> None:  # type: ignore[no-untyped-def]
    org = uuid4()
    webhook_id = _subscribe(app, org, ["risky_login"])
    _login(app, org, "low")
    high = _login(app, org, "high")
    denied_high = _login(app, org, "high", deny=True)
    denied_low = _login(app, org, "low", deny=True)
    payloads = _payloads(follower, webhook_id)
    assert [p["data"]["authentication_id"] for p in payloads] == [
        str(high),
        str(denied_high),
        str(denied_low),
    ]
    assert [p["data"]["denied"] for p in payloads] == [False, True, True]
    assert payloads[0]["data"]["risk"] == {
        "level": "high",
        "score": 80,
        "reasons": ["new_device"],
    }
    assert payloads[0]["occurred_at"] == "2026-11-28T08:00:00.000000Z"
    assert {p["org_id"] for p in payloads} == {str(org)} and {p["type"] for p in payloads} == {
        "risky_login"
    }


def test_only_subscribers_of_the_events_organisation_and_type_get_a_delivery(app, follower) -> None:  # type: ignore[no-untyped-def]
    org, other = uuid4(), uuid4()
    lockouts = _subscribe(app, org, ["lockout"])
    theirs = _subscribe(app, other, ["risky_login"])
    _login(app, org, "high")
    assert _payloads(follower, lockouts) == [] and _payloads(follower, theirs) == []


def test_a_batch_already_applied_is_refused_whole_and_adds_no_row(app, follower) -> None:  # type: ignore[no-untyped-def]
    org = uuid4()
    webhook_id = _subscribe(app, org, ["risky_login"])
    _login(app, org, "high")
    follower.catch_up()
    notifications = app.recorder.select_notifications(start=1, limit=100)
    batch = [(app.mapper.to_domain_event(n), Tracking(app.name, n.id)) for n in notifications]
    with pytest.raises(IntegrityError):
        follower.projection.process_batch(batch)
    assert len(_payloads(follower, webhook_id)) == 1


def test_a_registered_security_key_is_an_added_enrolment(app, follower) -> None:  # type: ignore[no-untyped-def]
    from domain.enrolment import WEBAUTHN_CREDENTIAL_KEYS, Enrolment

    org_id = uuid4()
    webhook_id = _subscribe(app, org_id, ["enrolment.added"])
    enrolment = Enrolment.start_webauthn(
        enrolment_id=uuid4(),
        org_id=org_id,
        user_id="alice",
        label="Security key",
        challenge="Y2hhbGxlbmdl",
        user_verification="preferred",
        resident_key="discouraged",
        attachment="cross-platform",
        ttl=timedelta(minutes=5),
        at=AT,
    )
    credential: dict[str, Any] = dict.fromkeys(WEBAUTHN_CREDENTIAL_KEYS, None)
    enrolment.register_credential({**credential, "transports": []}, at=AT)
    app.save(enrolment)
    [payload] = _payloads(follower, webhook_id)
    assert payload["type"] == "enrolment.added"
    assert payload["data"] == {
        "enrolment_id": str(enrolment.id),
        "user_id": "alice",
        "method": "webauthn",
    }
