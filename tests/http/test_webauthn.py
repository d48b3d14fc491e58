"""WebAuthn over HTTP with a software authenticator: enrolment, login, passkeys, every refusal."""

from __future__ import annotations

import base64
from typing import Any
from uuid import UUID

import jwt
import pytest

from tests.http.conftest import context
from tests.softauthn import SoftAuthenticator

ORIGIN = "http://localhost:8000"  # the test server's default origin (TESSERA_PORT unset)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def enrol_key(
    client, headers, authenticator: SoftAuthenticator, user: str = "alice", **options: Any
) -> str:
    started = client.post(
        f"/v1/users/{user}/enrolments", json={"method": "webauthn", **options}, headers=headers
    )
    assert started.status_code == 201, started.text
    body = started.json()
    credential = authenticator.create(body["options"])
    confirmed = client.post(
        f"/v1/enrolments/{body['enrolment_id']}/confirm",
        json={"credential": credential},
        headers=headers,
    )
    assert confirmed.status_code == 200, confirmed.text
    return str(body["enrolment_id"])


def start_login(client, headers, user: str | None = "alice") -> dict[str, Any]:
    body: dict[str, Any] = {"context": context()}
    if user is not None:
        body["user_id"] = user
    response = client.post("/v1/authentications", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def login_options(client, headers, authentication_id: str) -> dict[str, Any]:
    response = client.post(
        f"/v1/authentications/{authentication_id}/webauthn/options", json={}, headers=headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def verify(client, headers, authentication_id: str, credential: dict[str, Any]):  # type: ignore[no-untyped-def]
    return client.post(
        f"/v1/authentications/{authentication_id}/verify",
        json={"method": "webauthn", "credential": credential},
        headers=headers,
    )


def claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


@pytest.fixture
def key() -> SoftAuthenticator:
    return SoftAuthenticator("localhost", ORIGIN)


def test_enrolment_options_are_the_level_3_json_form_with_the_requested_values(
    client, headers
) -> None:
    response = client.post(
        "/v1/users/alice/enrolments",
        json={
            "method": "webauthn",
            "authenticator_attachment": "cross-platform",
            "resident_key": "discouraged",
            "user_verification": "preferred",
        },
        headers=headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending" and "secret" not in body
    options = body["options"]
    assert options["rp"]["id"] == "localhost"
    assert options["authenticatorSelection"] == {
        "authenticatorAttachment": "cross-platform",
        "residentKey": "discouraged",
        "requireResidentKey": False,
        "userVerification": "preferred",
    }
    assert options["attestation"] == "none"
    assert len(base64.urlsafe_b64decode(options["challenge"] + "==")) == 32
    assert options["user"]["name"] == "alice"
    assert "alice" not in base64.urlsafe_b64decode(options["user"]["id"] + "==").decode("latin-1")
    assert options["pubKeyCredParams"][0]["alg"] == -7


def test_a_security_key_enrols_and_logs_in(client, headers, key) -> None:
    enrolment_id = enrol_key(client, headers, key)
    listed = client.get("/v1/users/alice/enrolments", headers=headers).json()
    assert [e["enrolment_id"] for e in listed] == [enrolment_id]
    assert listed[0]["status"] == "active" and listed[0]["authenticator"]["attested"] is False

    login = start_login(client, headers)
    assert "webauthn" in login["methods"]
    options = login_options(client, headers, login["authentication_id"])
    assert options["rpId"] == "localhost"
    assert [c["id"] for c in options["allowCredentials"]] == [b64(next(iter(key.credentials)))]
    response = verify(client, headers, login["authentication_id"], key.get(options))
    assert response.status_code == 200, response.text
    token = claims(response.json()["access_token"])
    assert token["sub"] == "alice"
    assert token["amr"] == ["hwk", "user", "mfa"]
    assert token["acr"] == "http://idmanagement.gov/ns/assurance/aal/2"


def test_a_passkey_logs_in_without_a_user_id(client, headers) -> None:
    passkey = SoftAuthenticator("localhost", ORIGIN, backup_eligible=True, backed_up=True)
    enrol_key(client, headers, passkey, user="bob", resident_key="required")
    login = start_login(client, headers, user=None)
    assert login["methods"] == ["webauthn"]
    options = login_options(client, headers, login["authentication_id"])
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    response = verify(client, headers, login["authentication_id"], passkey.get(options))
    assert response.status_code == 200, response.text
    token = claims(response.json()["access_token"])
    assert token["sub"] == "bob" and token["amr"] == ["swk", "user", "mfa"]
    shown = client.get(f"/v1/authentications/{login['authentication_id']}", headers=headers)
    assert shown.json()["user_id"] == "bob"


def test_a_user_handle_that_is_not_the_credentials_user_is_refused(client, headers) -> None:
    passkey = SoftAuthenticator("localhost", ORIGIN)
    enrol_key(client, headers, passkey, user="bob", resident_key="required")
    login = start_login(client, headers, user=None)
    options = login_options(client, headers, login["authentication_id"])
    response = verify(
        client, headers, login["authentication_id"], passkey.get(options, user_handle=b"x" * 16)
    )
    assert response.status_code == 422
    assert response.json()["type"] == "urn:tessera:problem:webauthn-rejected"


def _refusals(key: SoftAuthenticator, options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    wrong_challenge = {**options, "challenge": b64(b"\x01" * 32)}
    bad_signature = key.get(options)
    signature = bytearray(base64.urlsafe_b64decode(bad_signature["response"]["signature"] + "=="))
    signature[-1] ^= 1
    bad_signature["response"]["signature"] = b64(bytes(signature))
    return {
        "wrong challenge": key.get(wrong_challenge),
        "wrong origin": key.get(options, origin="https://evil.example"),
        "another localhost port": key.get(options, origin="http://localhost:8001"),
        "wrong rp id": key.get(
            {**options, "rpId": "example.com"}, credential_id=next(iter(key.credentials))
        ),
        "no user presence": key.get(options, flags_override=0x04),  # UV without UP
        "bad signature": bad_signature,
        "unknown credential": {
            **key.get(options),
            "id": b64(b"\x07" * 32),
            "rawId": b64(b"\x07" * 32),
        },
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong challenge",
        "wrong origin",
        "another localhost port",
        "wrong rp id",
        "no user presence",
        "bad signature",
        "unknown credential",
    ],
)
def test_every_refusal_is_a_problem_and_leaves_the_challenge_open(
    client, headers, key, case
) -> None:
    enrol_key(client, headers, key)
    login = start_login(client, headers)
    options = login_options(client, headers, login["authentication_id"])
    refused = verify(client, headers, login["authentication_id"], _refusals(key, options)[case])
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["detail"]
    state = client.get(f"/v1/authentications/{login['authentication_id']}", headers=headers)
    assert state.json()["status"] == "pending" and state.json()["attempts"] == 0
    accepted = verify(client, headers, login["authentication_id"], key.get(options))
    assert accepted.status_code == 200, accepted.text


def test_a_replayed_assertion_is_refused(client, headers, key) -> None:
    enrol_key(client, headers, key)
    first = start_login(client, headers)
    options = login_options(client, headers, first["authentication_id"])
    assertion = key.get(options)
    assert verify(client, headers, first["authentication_id"], assertion).status_code == 200
    again = verify(client, headers, first["authentication_id"], assertion)
    assert again.status_code == 409
    second = start_login(client, headers)
    login_options(client, headers, second["authentication_id"])
    replayed = verify(client, headers, second["authentication_id"], assertion)
    assert replayed.status_code == 422
    assert "challenge" in replayed.json()["detail"]


def test_uv_required_at_enrolment_is_required_at_every_login(client, headers) -> None:
    key = SoftAuthenticator("localhost", ORIGIN)
    enrol_key(client, headers, key, user_verification="required")
    login = start_login(client, headers)
    options = login_options(client, headers, login["authentication_id"])
    assert options["userVerification"] == "required"
    told_otherwise = {**options, "userVerification": "discouraged"}
    refused = verify(client, headers, login["authentication_id"], key.get(told_otherwise, uv=False))
    assert refused.status_code == 422
    assert "verification" in refused.json()["detail"]


def test_a_counter_that_goes_back_is_a_suspected_clone(
    client, headers, admin_headers, key, container
) -> None:
    enrolment_id = enrol_key(client, headers, key)

    def login_with(counter: int):  # type: ignore[no-untyped-def]
        login = start_login(client, headers)
        options = login_options(client, headers, login["authentication_id"])
        return verify(
            client, headers, login["authentication_id"], key.get(options, counter=counter)
        )

    assert login_with(10).status_code == 200
    refused = login_with(5)
    assert refused.status_code == 422 and "cloned" in refused.json()["detail"]
    topics = [e.topic for e in container.identity_app().recorder.select_events(UUID(enrolment_id))]
    assert sum(t.endswith("Enrolment.CloneSuspected") for t in topics) == 1

    changed = client.patch(
        "/v1/policy", json={"webauthn_reject_clones": False}, headers=admin_headers
    )
    assert changed.status_code == 200
    assert login_with(7).status_code == 200
    topics = [e.topic for e in container.identity_app().recorder.select_events(UUID(enrolment_id))]
    assert sum(t.endswith("Enrolment.CloneSuspected") for t in topics) == 2


def test_removing_a_credential_takes_effect_for_options_already_issued(
    client, headers, key
) -> None:
    enrolment_id = enrol_key(client, headers, key)
    login = start_login(client, headers)
    options = login_options(client, headers, login["authentication_id"])
    assert client.delete(f"/v1/enrolments/{enrolment_id}", headers=headers).status_code == 204
    refused = verify(client, headers, login["authentication_id"], key.get(options))
    assert refused.status_code == 422


def test_a_refused_registration_leaves_the_enrolment_pending(client, headers, key) -> None:
    started = client.post(
        "/v1/users/alice/enrolments", json={"method": "webauthn"}, headers=headers
    ).json()
    url = f"/v1/enrolments/{started['enrolment_id']}/confirm"
    wrong = client.post(
        url,
        json={"credential": key.create(started["options"], origin="http://localhost:9999")},
        headers=headers,
    )
    assert wrong.status_code == 422 and "origin" in wrong.json()["detail"].lower()
    shown = client.get(f"/v1/enrolments/{started['enrolment_id']}", headers=headers).json()
    assert shown["status"] == "pending"
    right = client.post(url, json={"credential": key.create(started["options"])}, headers=headers)
    assert right.status_code == 200, right.text


def test_a_credential_keeps_its_extra_browser_members(client, headers, key) -> None:
    started = client.post(
        "/v1/users/alice/enrolments", json={"method": "webauthn"}, headers=headers
    ).json()
    credential = key.create(started["options"])
    credential["authenticatorAttachment"] = "cross-platform"
    credential["response"]["publicKeyAlgorithm"] = -7
    credential["somethingNew"] = {"future": True}
    response = client.post(
        f"/v1/enrolments/{started['enrolment_id']}/confirm",
        json={"credential": credential},
        headers=headers,
    )
    assert response.status_code == 200, response.text


def test_tessera_fields_stay_strict(client, headers) -> None:
    response = client.post(
        "/v1/users/alice/enrolments", json={"method": "webauthn", "bogus": 1}, headers=headers
    )
    assert response.status_code in (400, 422)
    login = start_login(client, headers)
    response = client.post(
        f"/v1/authentications/{login['authentication_id']}/webauthn/options",
        json={"bogus": 1},
        headers=headers,
    )
    assert response.status_code in (400, 422)


def test_a_cross_origin_ceremony_needs_the_top_origin_in_the_policy(
    client, headers, admin_headers, key
) -> None:
    enrol_key(client, headers, key)
    embedded = {"crossOrigin": True, "topOrigin": "https://partner.example"}
    login = start_login(client, headers)
    options = login_options(client, headers, login["authentication_id"])
    refused = verify(
        client, headers, login["authentication_id"], key.get(options, client_extra=embedded)
    )
    assert refused.status_code == 422 and "partner.example" in refused.json()["detail"]
    changed = client.patch(
        "/v1/policy",
        json={"webauthn_top_origins": ["https://partner.example"]},
        headers=admin_headers,
    )
    assert changed.status_code == 200, changed.text
    accepted = verify(
        client, headers, login["authentication_id"], key.get(options, client_extra=embedded)
    )
    assert accepted.status_code == 200, accepted.text


def test_options_for_a_user_without_keys_are_refused_not_a_passkey_prompt(client, headers) -> None:
    login = start_login(client, headers, user="nobody")
    response = client.post(
        f"/v1/authentications/{login['authentication_id']}/webauthn/options",
        json={},
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "Method 'webauthn' is not available for this login."
