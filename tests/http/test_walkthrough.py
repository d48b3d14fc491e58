"""The README's walkthrough over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.helpers import b32decode, totp


def test_enrol_confirm_authenticate_and_verify_yields_a_token(client, headers, clock) -> None:
    created = client.post("/v1/users/alice/enrolments", json={"method": "totp"}, headers=headers)
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "pending" and body["qr_svg"].startswith("<svg")
    key = b32decode(body["secret"])

    confirmed = client.post(
        f"/v1/enrolments/{body['enrolment_id']}/confirm",
        json={"code": totp(key, clock.now())},
        headers=headers,
    )
    assert confirmed.json() == {"enrolment_id": body["enrolment_id"], "status": "active"}

    clock.advance(30)
    started = client.post(
        "/v1/authentications",
        headers=headers,
        json={"user_id": "alice", "context": {"ip": "203.0.113.9", "user_agent": "curl"}},
    )
    assert started.status_code == 201
    session = started.json()
    assert session["status"] == "pending" and session["methods"] == ["totp"]
    assert session["required_aal"] == 2 and session["risk"]["level"] == "low"

    verified = client.post(
        f"/v1/authentications/{session['authentication_id']}/verify",
        json={"method": "totp", "code": totp(key, clock.now())},
        headers=headers,
    )
    assert verified.status_code == 200
    token = verified.json()
    assert token["status"] == "satisfied" and token["token_type"] == "Bearer"
    assert token["expires_in"] == 300 and token["access_token"].count(".") == 2
