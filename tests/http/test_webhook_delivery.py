"""Webhooks end to end on SQLite and PostgreSQL: events reach a real local HTTP receiver signed,
and a receiver that is down for a while (503, then a closed port) still gets every event
exactly once when it is back, with each failed attempt recorded."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

import pytest

from tests.http.conftest import context


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local webhook receiver: `up` answers 200 and records; otherwise it answers 503."""

    up: bool = True
    received: list[Received] = field(default_factory=list)
    refused: int = 0
    server: ThreadingHTTPServer | None = None
    port: int = 0

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.up:
                    receiver.received.append(Received(dict(self.headers.items()), body))
                    self.send_response(200)
                else:
                    receiver.refused += 1
                    self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close_port(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/tessera"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    if r.server is not None:
        r.close_port()


def _settle(container: Any, webhook_id: UUID, clock: Any) -> list[Any]:
    """Run the outbox projection and dispatcher until nothing is due at the fake clock's now
    (the server's own dispatcher thread may be delivering some rows at the same time)."""
    follower, dispatcher = container.webhook_follower(), container.webhook_dispatcher()
    view = container.webhook_outbox()
    deadline = time.monotonic() + 30
    while True:
        follower.catch_up()
        dispatcher.run_once()
        rows = view.deliveries(webhook_id, limit=1000)
        now = clock.now()
        if all(r.status != "pending" or r.next_attempt_at > now for r in rows):
            return rows
        assert time.monotonic() < deadline, rows
        time.sleep(0.05)


def _wrong_code(client: Any, headers: dict[str, str], user: str) -> None:
    response = client.post(
        "/v1/authentications",
        headers=headers,
        json={"user_id": user, "context": context(), "method": "totp", "code": "000000"},
    )
    assert response.status_code == 401, response.text


def _independent_check(secret: str, item: Received) -> dict[str, Any]:
    """Verify the signature with hmac alone, as a receiver in another language would."""
    parts = dict(p.split("=", 1) for p in item.headers["Tessera-Signature"].split(","))
    expected = hmac.new(
        secret.encode(), parts["t"].encode() + b"." + item.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    payload: dict[str, Any] = json.loads(item.body)
    assert item.headers["Tessera-Delivery"] == payload["id"]
    assert item.headers["Tessera-Event"] == payload["type"]
    assert item.headers["Content-Type"] == "application/json"
    return payload


def test_signed_deliveries_arrive_and_a_receiver_that_was_down_gets_every_event_once(
    client, headers, admin_headers, enrol, container, clock, org, receiver
) -> None:
    created = client.post(
        "/v1/webhooks",
        json={
            "url": receiver.url,
            "events": ["enrolment.added", "enrolment.removed", "lockout", "risky_login"],
        },
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    webhook_id, secret = UUID(created.json()["webhook_id"]), created.json()["secret"]

    # receiver up: enrol+confirm, revoke, and a lockout after three wrong codes
    alice = enrol("alice")
    assert client.delete(f"/v1/enrolments/{alice.id}", headers=headers).status_code == 204
    policy = client.patch("/v1/policy", json={"max_failed_attempts": 3}, headers=admin_headers)
    assert policy.status_code == 200
    bob = enrol("bob")
    for _ in range(3):
        _wrong_code(client, headers, "bob")
    rows = _settle(container, webhook_id, clock)
    assert {r.status for r in rows} == {"delivered"} and len(rows) == 4
    payloads = [_independent_check(secret, item) for item in receiver.received]
    seen = sorted((p["type"], p["data"]["user_id"]) for p in payloads)
    assert seen == [
        ("enrolment.added", "alice"),
        ("enrolment.added", "bob"),
        ("enrolment.removed", "alice"),
        ("lockout", "bob"),
    ]
    lockout = next(p for p in payloads if p["type"] == "lockout")
    assert lockout["org_id"] == str(org.org_id)
    assert lockout["data"] == {
        "enrolment_id": bob.id,
        "user_id": "bob",
        "method": "totp",
        "failures": 3,
    }
    signed_at = {int(i.headers["Tessera-Signature"].split(",")[0][2:]) for i in receiver.received}
    assert signed_at == {int(clock.now().timestamp())}  # time comes from the Clock port
    for item in receiver.received:
        assert secret not in item.body.decode() and bob.body["secret"] not in item.body.decode()

    # receiver down: first it answers 503, then its port is closed
    receiver.up = False
    carol = enrol("carol")
    assert client.delete(f"/v1/enrolments/{carol.id}", headers=headers).status_code == 204
    _settle(container, webhook_id, clock)
    clock.advance(1)
    _settle(container, webhook_id, clock)
    assert receiver.refused >= 4  # both events, twice
    receiver.close_port()
    for seconds in (2, 4):
        clock.advance(seconds)
        rows = _settle(container, webhook_id, clock)
    pending = [r for r in rows if r.status == "pending"]
    assert len(pending) == 2 and all(r.attempts >= 4 for r in pending)
    assert all(r.last_status is None and r.last_error for r in pending)

    # back up on the same port: the next round delivers everything still owed
    receiver.up = True
    receiver.start()
    clock.advance(3600)
    rows = _settle(container, webhook_id, clock)
    assert {r.status for r in rows} == {"delivered"} and len(rows) == 6
    ids = [i.headers["Tessera-Delivery"] for i in receiver.received]
    assert sorted(ids) == sorted(str(r.delivery_id) for r in rows)  # each exactly once
    later = [_independent_check(secret, item) for item in receiver.received[4:]]
    assert sorted(p["type"] for p in later) == ["enrolment.added", "enrolment.removed"]

    view = container.webhook_outbox()
    for row in (r for r in rows if r.attempts > 1):
        attempts = view.attempts(row.delivery_id)
        assert [a.number for a in attempts] == list(range(1, row.attempts + 1))
        assert attempts[0].status == 503 and attempts[-1].status == 200
        assert any(a.status is None and a.error for a in attempts)  # the closed port
    listed = client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=admin_headers).json()
    assert {d["status"] for d in listed} == {"delivered"}
    assert sorted(d["attempts"] for d in listed)[-2:] == sorted(
        r.attempts for r in rows if r.attempts > 1
    )
    assert all(d["next_attempt_at"] is None for d in listed)


def test_subscriptions_see_only_events_after_they_were_created_and_stop_when_deleted(
    client, headers, admin_headers, enrol, container, clock, receiver
) -> None:
    enrol("before")
    created = client.post(
        "/v1/webhooks",
        json={"url": receiver.url, "events": ["enrolment.added"]},
        headers=admin_headers,
    ).json()
    webhook_id = UUID(created["webhook_id"])
    enrol("during")
    rows = _settle(container, webhook_id, clock)
    assert [json.loads(r.payload)["data"]["user_id"] for r in rows] == ["during"]
    client.delete(f"/v1/webhooks/{webhook_id}", headers=admin_headers)
    enrol("after")
    rows = _settle(container, webhook_id, clock)
    assert len(rows) == 1 and len(receiver.received) == 1


def test_a_host_outside_the_allow_list_is_never_called(
    client, admin_headers, enrol, container, clock, receiver
) -> None:
    created = client.post(
        "/v1/webhooks",
        json={"url": receiver.url, "events": ["enrolment.added"]},
        headers=admin_headers,
    ).json()
    container.webhook_dispatcher().allowed_hosts = ("hooks.example.com",)
    enrol("dana")
    rows = _settle(container, UUID(created["webhook_id"]), clock)
    assert receiver.received == [] and rows[0].status == "pending"
    assert "TESSERA_WEBHOOK_ALLOWED_HOSTS" in (rows[0].last_error or "")
