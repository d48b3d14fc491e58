"""The webhook subscription API on SQLite and PostgreSQL: admin only, org-scoped, strict, and
the signing secret is shown once and never stored in plaintext."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from tests.conftest import PG_URL
from tests.fakes import FakeWebhookSender

HOOK = {"url": "https://hooks.example.com/tessera", "events": ["lockout", "enrolment.added"]}


@pytest.fixture(autouse=True)
def no_network(container) -> FakeWebhookSender:  # type: ignore[no-untyped-def]
    """The inline dispatcher must never reach example.com from a test."""
    sender = FakeWebhookSender()
    container.webhook_sender.override(sender)
    return sender


def _create(client, admin_headers, **body: Any):  # type: ignore[no-untyped-def]
    return client.post("/v1/webhooks", json={**HOOK, **body}, headers=admin_headers)


def test_an_administrator_subscribes_sees_the_secret_once_lists_and_deletes(
    client, admin_headers
) -> None:
    created = _create(client, admin_headers, description="SIEM")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["url"] == HOOK["url"] and body["events"] == ["enrolment.added", "lockout"]
    assert body["secret"].startswith("whsec_") and len(body["secret"]) == 70
    listed = client.get("/v1/webhooks", headers=admin_headers)
    assert listed.status_code == 200
    assert [w["webhook_id"] for w in listed.json()] == [body["webhook_id"]]
    assert "secret" not in listed.text and body["secret"] not in listed.text
    assert listed.json()[0]["description"] == "SIEM"
    deleted = client.delete(f"/v1/webhooks/{body['webhook_id']}", headers=admin_headers)
    assert deleted.status_code == 204
    assert client.get("/v1/webhooks", headers=admin_headers).json() == []
    again = client.delete(f"/v1/webhooks/{body['webhook_id']}", headers=admin_headers)
    assert again.status_code == 404


def test_application_keys_are_refused_everywhere(client, headers, admin_headers) -> None:
    webhook_id = _create(client, admin_headers).json()["webhook_id"]
    assert _create(client, headers).status_code == 403
    assert client.get("/v1/webhooks", headers=headers).status_code == 403
    assert client.delete(f"/v1/webhooks/{webhook_id}", headers=headers).status_code == 403
    deliveries = client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=headers)
    assert deliveries.status_code == 403
    assert client.get("/v1/webhooks").status_code == 401


def test_another_organisations_webhook_answers_404(client, admin_headers, container) -> None:
    webhook_id = _create(client, admin_headers).json()["webhook_id"]
    other = container.create_organisation()(name="Globex")
    theirs = {"Authorization": f"Bearer {other.admin_api_key}"}
    assert client.get("/v1/webhooks", headers=theirs).json() == []
    assert client.delete(f"/v1/webhooks/{webhook_id}", headers=theirs).status_code == 404
    found = client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=theirs)
    assert found.status_code == 404
    unknown = client.get(f"/v1/webhooks/{uuid4()}/deliveries", headers=admin_headers)
    assert unknown.status_code == 404
    mine = client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=admin_headers)
    assert mine.status_code == 200 and mine.json() == []


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://hooks.example.com/x"},
        {"url": "https://user:pw@hooks.example.com/x"},
        {"url": "https://hooks.example.com/x#f"},
        {"url": "http:///nohost"},
        {"events": []},
        {"events": ["enrolment.exploded"]},
        {"description": "x" * 201},
        {"colour": "red"},
    ],
)
def test_invalid_subscriptions_are_problems_with_422(client, admin_headers, body) -> None:  # type: ignore[no-untyped-def]
    response = _create(client, admin_headers, **body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_recovery_opened_is_accepted_as_a_reserved_event_type(client, admin_headers) -> None:
    response = _create(client, admin_headers, events=["recovery.opened"])
    assert response.status_code == 201 and response.json()["events"] == ["recovery.opened"]


def test_the_secret_appears_in_no_event_and_no_table_only_sealed(
    client, admin_headers, container, store_url, tmp_path: Path
) -> None:
    secret = _create(client, admin_headers).json()["secret"]
    client.get("/v1/webhooks", headers=admin_headers)  # the outbox projection has caught up
    app = container.identity_app()
    states = [n.state for n in app.recorder.select_notifications(start=1, limit=100_000)]
    assert states and not any(secret.encode() in state for state in states)
    assert any(b"tsv1." in state for state in states)  # the sealed reference is there
    assert secret.encode() not in _everything_stored(store_url, container)


def test_the_author_of_a_subscription_shows_in_the_audit_trail(client, admin_headers) -> None:
    webhook_id = _create(client, admin_headers).json()["webhook_id"]
    client.delete(f"/v1/webhooks/{webhook_id}", headers=admin_headers)
    records = client.get("/v1/audit", headers=admin_headers, params={"limit": 1000}).json()
    mine = [r for r in records["records"] if r["subject_id"] == webhook_id]
    assert [r["action"] for r in mine] == ["webhook.created", "webhook.deleted"]
    assert {r["actor_type"] for r in mine} == {"administrator"}
    assert mine[0]["details"] == {"url": HOOK["url"], "events": ["enrolment.added", "lockout"]}


def _everything_stored(store_url: str, container: Any) -> bytes:
    if store_url.startswith("sqlite"):
        events = Path(container.database().sqlite_path)
        outbox = Path(container.database().projection_sqlite_path("webhooks"))
        dumped = b""
        for path in (events, outbox):
            with sqlite3.connect(path) as db:
                dumped += "\n".join(db.iterdump()).encode()
            dumped += path.read_bytes()
        return dumped
    schema = store_url.split("schema=")[1]
    dumped = b""
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
        for (table,) in tables:
            rows = conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t').fetchall()
            dumped += "\n".join(r[0] for r in rows).encode()
            if table == "identity_events":
                states = conn.execute(f'SELECT state FROM "{schema}"."{table}"').fetchall()
                dumped += b"".join(bytes(r[0]) for r in states)
    return dumped


def test_deleting_an_unknown_id_is_404_and_a_malformed_id_is_a_problem(
    client, admin_headers
) -> None:
    assert client.delete(f"/v1/webhooks/{uuid4()}", headers=admin_headers).status_code == 404
    bad = client.delete("/v1/webhooks/not-a-uuid", headers=admin_headers)
    assert bad.status_code in (400, 404, 422)
    assert bad.headers["content-type"] == "application/problem+json"
    UUID(_create(client, admin_headers).json()["webhook_id"])
