"""The audit trail over HTTP, on SQLite and PostgreSQL: records, filters, pages, tampering."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import psycopg

from application.audit import verify_chain
from tests.conftest import PG_URL
from tests.http.conftest import context


def _start(client, headers, user="alice", **extra):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/authentications",
        headers=headers,
        json={"user_id": user, "context": context(), **extra},
    )


def _all(client, admin_headers, **params: Any) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    records, cursor = [], None
    while True:
        query = {**params, "limit": 3} | ({"cursor": cursor} if cursor else {})
        response = client.get("/v1/audit", headers=admin_headers, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        records += body["records"]
        cursor = body["next_cursor"]
        if cursor is None:
            return records


def test_a_login_leaves_records_with_actor_outcome_ip_and_no_secret_or_code(
    client, headers, admin_headers, enrol, container, org
) -> None:
    enrolled = enrol()
    code = enrolled.code()
    assert _start(client, headers, method="totp", code=code).status_code == 201
    assert _start(client, headers, method="totp", code="000000").status_code == 401
    client.patch("/v1/policy", json={"max_failed_attempts": 7}, headers=admin_headers)
    client.post(f"/v1/enrolments/{enrolled.id}/unlock", headers=admin_headers)
    records = _all(client, admin_headers)
    actions = [r["action"] for r in records]
    for action in (
        "organisation.created",
        "api_key.issued",
        "enrolment.started",
        "enrolment.confirmed",
        "authentication.started",
        "authentication.factor_verified",
        "authentication.satisfied",
        "authentication.attempt_failed",
        "enrolment.code_rejected",
        "policy.changed",
        "enrolment.unlocked",
    ):
        assert action in actions, action
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    failed = next(r for r in records if r["action"] == "authentication.attempt_failed")
    assert failed["outcome"] == "failure" and failed["method"] == "totp"
    assert failed["ip"] == "198.51.100.7" and failed["user_agent"].startswith("Mozilla")
    assert failed["user_id"] == "alice"
    changed = next(r for r in records if r["action"] == "policy.changed")
    assert changed["actor_type"] == "administrator" and changed["details"] == {
        "settings": ["max_failed_attempts"]
    }
    dump = json.dumps(records)
    enrolment = container.identity_app().get_enrolment(UUID(enrolled.id), org_id=org.org_id)
    for secret in (enrolment.secret_ref, enrolled.body["secret"], code, org.api_key):
        assert secret not in dump


def test_filters_and_pages_select_records_and_application_keys_are_refused(
    client, headers, admin_headers, enrol
) -> None:
    enrol("alice")
    enrol("bob")
    _start(client, headers, user="bob", method="totp", code="000000")
    bob = _all(client, admin_headers, user_id="bob")
    assert bob and {r["user_id"] for r in bob} == {"bob"}
    failures = _all(client, admin_headers, outcome="failure")
    assert failures and {r["outcome"] for r in failures} == {"failure"}
    started = _all(client, admin_headers, action="enrolment.started")
    assert [r["user_id"] for r in started] == ["alice", "bob"]
    everything = _all(client, admin_headers)
    middle = everything[len(everything) // 2]["at"]
    later = _all(client, admin_headers, **{"from": middle})
    earlier = _all(client, admin_headers, to=middle)
    assert len(later) + len(earlier) == len(everything) and later[0]["at"] == middle
    assert client.get("/v1/audit", headers=headers).status_code == 403
    bad = client.get("/v1/audit", headers=admin_headers, params={"cursor": "x"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


def test_an_organisation_never_sees_another_organisations_records(
    client, admin_headers, enrol, container
) -> None:
    enrol("alice")
    other = container.create_organisation()(name="Globex")
    theirs = {"Authorization": f"Bearer {other.admin_api_key}"}
    records = _all(client, theirs)
    assert {r["org_id"] for r in records} == {str(other.org_id)}
    assert not any(r["user_id"] == "alice" for r in records)
    feed = client.get("/v1/feeds/audit", headers=theirs)
    lines = [json.loads(line) for line in feed.text.splitlines()]
    assert lines and {line["org_id"] for line in lines} == {str(other.org_id)}


def test_the_feed_follows_changes_after_a_cursor(client, headers, admin_headers, enrol) -> None:
    first = client.get("/v1/feeds/audit", headers=admin_headers)
    assert first.status_code == 200 and first.headers["content-type"] == "application/x-ndjson"
    cursor = first.headers["x-next-cursor"]
    enrol("carol")
    after = client.get("/v1/feeds/audit", headers=admin_headers, params={"cursor": cursor})
    lines = [json.loads(line) for line in after.text.splitlines()]
    assert [line["action"] for line in lines][:3] == [
        "account.opened",
        "account.enrolment_added",
        "enrolment.started",
    ]
    assert all(line["position"] > int(cursor) for line in lines)
    assert client.get("/v1/feeds/nope", headers=admin_headers).status_code == 404
    assert client.get("/v1/feeds/audit", headers=headers).status_code == 403


def test_projection_status_shows_no_lag_after_a_read(client, admin_headers, enrol) -> None:
    enrol()
    client.get("/v1/audit", headers=admin_headers)
    status = client.get("/v1/projections", headers=admin_headers).json()
    assert status[0]["name"] == "audit" and status[0]["mode"] == "inline"
    assert status[0]["lag"] == 0 and status[0]["position"] == status[0]["head"] > 0


def test_altering_a_stored_record_is_reported_as_the_first_break(
    client, admin_headers, enrol, container, org, store_url
) -> None:
    enrol()
    records = _all(client, admin_headers)
    view = container.audit_view()
    assert verify_chain(view) == []
    target = records[3]
    statement = "UPDATE {t} SET outcome = 'failure' WHERE org_id = {p} AND seq = {p}"
    if store_url.startswith("sqlite"):
        import sqlite3

        path = container.database().projection_sqlite_path("audit")
        with sqlite3.connect(path) as db:
            db.execute(statement.format(t="audit_records", p="?"), (str(org.org_id), 4))
    else:
        schema = store_url.split("schema=")[1]
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(statement.format(t=f'"{schema}".audit_records', p="%s"), (org.org_id, 4))
    breaks = verify_chain(view)
    assert len(breaks) == 1
    assert breaks[0].org_id == org.org_id and breaks[0].seq == 4
    assert breaks[0].position == target["position"]
    assert "hash" in breaks[0].reason


def test_every_domain_event_class_has_an_audit_description() -> None:
    """No event type is dropped from the trail: each either creates a subject or follows one
    with a named action."""
    import importlib
    import inspect
    import pkgutil

    from eventsourcing.domain import Aggregate

    import domain
    from application import audit

    aggregates = set()
    for module_info in pkgutil.iter_modules(domain.__path__):
        module = importlib.import_module(f"domain.{module_info.name}")
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, Aggregate) and value is not Aggregate:
                aggregates.add(value)
    missing = []
    for aggregate in aggregates:
        for name, event_class in inspect.getmembers(aggregate, inspect.isclass):
            if not issubclass(event_class, Aggregate.Event) or name in ("Event", "Created"):
                continue
            if name == "Snapshot" or not event_class.__qualname__.startswith(aggregate.__name__):
                continue
            rule = audit._rule(event_class)
            if rule.create is None and rule.following is None:
                missing.append(event_class.__qualname__)
    assert missing == []


def test_webauthn_and_sms_records_hold_no_code_number_key_or_challenge(
    client, headers, admin_headers, container
) -> None:
    from tests.http.test_codes import MOBILE, enrol_phone, last_code, send, start, verify
    from tests.http.test_webauthn import ORIGIN, enrol_key, login_options, start_login
    from tests.http.test_webauthn import verify as verify_key
    from tests.softauthn import SoftAuthenticator

    enrol_phone(client, headers, container)
    login = start(client, headers)
    send(client, headers, login["authentication_id"])
    code = last_code(container)
    assert verify(client, headers, login["authentication_id"], code).status_code == 200
    key = SoftAuthenticator("localhost", ORIGIN)
    enrolment_id = enrol_key(client, headers, key, user="bob")
    login = start_login(client, headers, user="bob")
    options = login_options(client, headers, login["authentication_id"])
    assert verify_key(client, headers, login["authentication_id"], key.get(options)).is_success
    records = _all(client, admin_headers)
    actions = {r["action"] for r in records}
    assert {
        "delivery.requested",
        "delivery.attempted",
        "enrolment.code_sent",
        "enrolment.code_used",
        "authentication.code_sent",
        "enrolment.credential_registered",
        "credential.bound",
        "authentication.webauthn_requested",
        "authentication.key_verified",
        "enrolment.assertion_accepted",
    } <= actions
    dump = json.dumps(records)
    enrolment = container.identity_app().get_enrolment(
        UUID(enrolment_id), org_id=UUID(records[0]["org_id"])
    )
    assert enrolment.credential is not None
    for secret in (
        code,
        MOBILE,
        "7400123456",
        enrolment.credential["public_key"],
        options["challenge"],
    ):
        assert secret not in dump
    assert "code_hash" not in dump and "kek-" not in dump
