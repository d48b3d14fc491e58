"""Verification over HTTP: single use, throttling, tokens, erasure and rotation."""

from __future__ import annotations

import jwt
import pytest

from tests.http.conftest import context


def _start(client, headers, user="alice", **extra):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/authentications",
        headers=headers,
        json={"user_id": user, "context": context(), **extra},
    )


def _verify(client, headers, session_id, code, method="totp"):  # type: ignore[no-untyped-def]
    return client.post(
        f"/v1/authentications/{session_id}/verify",
        headers=headers,
        json={"method": method, "code": code},
    )


def test_a_code_is_accepted_once_and_refused_the_second_time(client, headers, enrol) -> None:
    enrolled = enrol()
    code = enrolled.code()
    first = _start(client, headers, method="totp", code=code)
    assert first.status_code == 201 and first.json()["status"] == "satisfied"
    second = _start(client, headers, method="totp", code=code)
    assert second.status_code == 401
    assert second.headers["content-type"].startswith("application/problem+json")
    assert second.json()["type"] == "urn:tessera:problem:invalid-code"


def test_the_one_call_form_answers_with_a_token(client, headers, enrol) -> None:
    enrolled = enrol()
    response = _start(client, headers, method="totp", code=enrolled.code())
    body = response.json()
    assert response.status_code == 201
    assert body["status"] == "satisfied" and body["token_type"] == "Bearer"
    assert body["access_token"] and body["expires_in"] == 300


def test_tokens_verify_with_pyjwt_against_the_published_jwks(
    client, headers, enrol, org, clock
) -> None:
    enrolled = enrol()
    token = _start(client, headers, method="totp", code=enrolled.code()).json()["access_token"]
    jwks = jwt.PyJWKSet.from_dict(client.get("/.well-known/jwks.json").json())
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    claims = jwt.decode(
        token,
        key=key.key,
        algorithms=["RS256"],
        audience=f"urn:tessera:org:{org.org_id}",
        issuer="http://localhost:8000",
        options={"require": ["exp", "iat", "sub", "jti", "aud", "iss"], "verify_exp": False},
    )
    assert claims["sub"] == "alice" and claims["amr"] == ["otp"]
    assert claims["acr"] == "http://idmanagement.gov/ns/assurance/aal/2"
    assert claims["auth_time"] == int(clock.now().timestamp()) == claims["iat"]
    assert claims["exp"] - claims["iat"] == 300 and claims["org_id"] == str(org.org_id)
    assert "d" not in client.get("/.well-known/jwks.json").json()["keys"][0]


def test_a_wrong_code_is_401_then_throttled_with_retry_after_then_locked(
    client, headers, admin_headers, enrol, clock
) -> None:
    enrolled = enrol()
    session_id = _start(client, headers).json()["authentication_id"]
    statuses = []
    for _ in range(3):
        statuses.append(_verify(client, headers, session_id, "000000").status_code)
    assert statuses == [401, 401, 401]
    throttled = _verify(client, headers, session_id, enrolled.code())
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "1"
    assert throttled.json()["retry_after"] == 1
    # the throttled attempt was not judged: the right code still works after the wait
    clock.advance(1)
    ok = _verify(client, headers, session_id, enrolled.code())
    assert ok.status_code == 200 and ok.json()["status"] == "satisfied"

    for attempt in range(10):
        clock.advance(1000)
        response = _start(client, headers, method="totp", code="123456")
        assert response.status_code == 401, attempt
    clock.advance(1000)
    locked = _start(client, headers, method="totp", code=enrolled.code())
    assert locked.status_code == 429 and locked.json()["type"].endswith(":locked")
    listed = client.get("/v1/users/alice/enrolments", headers=headers).json()
    assert listed[0]["status"] == "locked"

    assert client.post(f"/v1/enrolments/{enrolled.id}/unlock", headers=headers).status_code == 403
    unlocked = client.post(f"/v1/enrolments/{enrolled.id}/unlock", headers=admin_headers)
    assert unlocked.status_code == 200 and unlocked.json()["status"] == "active"
    assert _start(client, headers, method="totp", code=enrolled.code()).status_code == 201


def test_throttling_looks_the_same_for_a_user_without_authenticators(
    client, headers, enrol, clock
) -> None:
    enrol("alice")

    def answers(user: str) -> list[tuple[int, str | None, str | None]]:
        out = []
        for _ in range(5):
            r = _start(client, headers, user=user, method="totp", code="000000")
            body = r.json()
            out.append((r.status_code, body.get("type"), r.headers.get("retry-after")))
        return out

    assert answers("alice") == answers("nobody")


def test_hotp_accepts_codes_ahead_within_the_look_ahead_and_resynchronises(
    client, headers, enrol
) -> None:
    enrolled = enrol(method="hotp")  # counter 0 used by the confirmation
    assert _start(client, headers, method="hotp", code=enrolled.hotp(3)).status_code == 201
    assert _start(client, headers, method="hotp", code=enrolled.hotp(2)).status_code == 401
    assert _start(client, headers, method="hotp", code=enrolled.hotp(40)).status_code == 401
    resync = client.post(
        f"/v1/enrolments/{enrolled.id}/resync",
        headers=headers,
        json={"code1": enrolled.hotp(50), "code2": enrolled.hotp(51)},
    )
    assert resync.status_code == 200
    assert _start(client, headers, method="hotp", code=enrolled.hotp(51)).status_code == 401
    assert _start(client, headers, method="hotp", code=enrolled.hotp(52)).status_code == 201


def test_a_pending_enrolment_cannot_verify_a_login(client, headers, enrol) -> None:
    enrolled = enrol(confirm=False)
    session = _start(client, headers).json()
    assert session["methods"] == []
    assert (
        _verify(client, headers, session["authentication_id"], enrolled.code()).status_code == 401
    )


def test_a_revoked_enrolment_stops_working_at_once(client, headers, enrol) -> None:
    enrolled = enrol()
    assert client.delete(f"/v1/enrolments/{enrolled.id}", headers=headers).status_code == 204
    assert _start(client, headers, method="totp", code=enrolled.code()).status_code == 401
    assert client.get("/v1/users/alice/enrolments", headers=headers).json() == []


def test_erasing_a_user_crypto_shreds_their_secrets(
    client, headers, admin_headers, enrol, container, org
) -> None:
    enrolled = enrol()
    enrolment = container.identity_app().get_enrolment(
        __import__("uuid").UUID(enrolled.id), org_id=org.org_id
    )
    assert client.delete("/v1/users/alice", headers=headers).status_code == 403
    assert client.delete("/v1/users/alice", headers=admin_headers).status_code == 204
    from application.ports import SecretUnavailableError
    from domain.account import Account

    with pytest.raises(SecretUnavailableError):
        container.vault().open(Account.create_id(org.org_id, "alice"), enrolment.secret_ref)
    assert client.delete("/v1/users/never-existed", headers=admin_headers).status_code == 204


def test_an_expired_session_takes_no_more_codes(client, headers, enrol, clock) -> None:
    enrolled = enrol()
    session_id = _start(client, headers).json()["authentication_id"]
    clock.advance(301)
    response = _verify(client, headers, session_id, enrolled.code())
    assert response.status_code == 409
    shown = client.get(f"/v1/authentications/{session_id}", headers=headers).json()
    assert shown["status"] == "expired"


def test_the_policy_is_read_by_any_key_and_changed_only_by_administrators(
    client, headers, admin_headers
) -> None:
    assert client.get("/v1/policy", headers=headers).json()["max_failed_attempts"] == 10
    change = {"max_failed_attempts": 5}
    assert client.patch("/v1/policy", json=change, headers=headers).status_code == 403
    changed = client.patch("/v1/policy", json=change, headers=admin_headers)
    assert changed.status_code == 200 and changed.json()["max_failed_attempts"] == 5
    too_many = client.patch("/v1/policy", json={"max_failed_attempts": 101}, headers=admin_headers)
    assert too_many.status_code == 422
    assert client.get("/v1/policy", headers=headers).json()["max_failed_attempts"] == 5


def test_rotating_keys_keeps_secrets_readable_and_publishes_both_signing_keys(
    client, headers, enrol, container, clock
) -> None:
    enrolled = enrol()
    container.key_ring().add_new_active()
    assert container.vault().rewrap_all() == 1
    container.vault()._cache.clear()
    before = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    new_kid = container.signing_keys().rotate(now=clock.now(), activate_after=0)
    after = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    assert after == before | {new_kid}
    token = _start(client, headers, method="totp", code=enrolled.code()).json()["access_token"]
    assert jwt.get_unverified_header(token)["kid"] == new_kid


def test_a_method_that_cannot_reach_the_required_aal_is_refused_without_using_the_code(
    client, headers, admin_headers, enrol
) -> None:
    enrolled = enrol()
    client.patch("/v1/policy", json={"login_aal": 3}, headers=admin_headers)
    session = _start(client, headers).json()
    assert session["required_aal"] == 3 and session["methods"] == []
    refused = _verify(client, headers, session["authentication_id"], enrolled.code())
    assert refused.status_code == 422
    client.patch("/v1/policy", json={"login_aal": 2}, headers=admin_headers)
    assert _start(client, headers, method="totp", code=enrolled.code()).status_code == 201


def test_a_success_forgives_the_misses_counted_against_a_second_authenticator(
    client, headers, enrol, container, org
) -> None:
    first, second = enrol(), enrol()
    _start(client, headers, method="totp", code="000000")
    assert _start(client, headers, method="totp", code=first.code()).status_code == 201
    from uuid import UUID

    for enrolled in (first, second):
        enrolment = container.identity_app().get_enrolment(UUID(enrolled.id), org_id=org.org_id)
        assert enrolment.consecutive_failures == 0
