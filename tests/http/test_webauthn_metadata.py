"""Attestation through FIDO metadata: AAL3 for attested hardware keys, policy on models, and
suspension when a newer BLOB reports a model compromised."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from dependency_injector import providers

from adapters.mds import MetadataError
from adapters.mds_store import StoredMetadata
from tests.http.test_webauthn import ORIGIN, enrol_key, login_options, start_login, verify
from tests.softauthn import (
    AttestationCA,
    MdsSigner,
    SoftAuthenticator,
    make_attestation_ca,
    make_mds_blob,
    make_mds_root,
    mds_entry,
)

MODEL = uuid.UUID("2fc0579f-8113-47ea-b116-bb5a8db9202a")


class Metadata:
    def __init__(self, home: Path, signer: MdsSigner, ca: AttestationCA) -> None:
        self.home, self.signer, self.ca = home, signer, ca
        root = home / "mds-root.pem"
        root.write_bytes(signer.root_pem)
        self.store = StoredMetadata(home / "mds" / "blob.jwt", root)

    def publish(self, serial: int, *statuses: tuple[str, str]) -> Path:
        entry = mds_entry(
            str(MODEL),
            description="Example Key 5",
            roots=[self.ca.der],
            statuses=statuses or (("FIDO_CERTIFIED_L2", "2024-01-01"),),
        )
        path = self.home / f"blob-{serial}.jwt"
        path.write_bytes(make_mds_blob([entry], serial=serial, signer=self.signer))
        return path


@pytest.fixture
def metadata(container, tmp_path) -> Metadata:  # type: ignore[no-untyped-def]
    installed = Metadata(tmp_path, make_mds_root("RS256"), make_attestation_ca())
    container.authenticator_metadata.override(providers.Object(installed.store))
    installed.store.install(installed.publish(1))
    return installed


def hardware_key(metadata: Metadata) -> SoftAuthenticator:
    return SoftAuthenticator(
        "localhost",
        ORIGIN,
        attestation="packed-x5c",
        aaguid=MODEL.bytes,
        ca=metadata.ca,
        attachment="cross-platform",
    )


def claims(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return dict(jwt.decode(response.json()["access_token"], options={"verify_signature": False}))


def test_an_attested_hardware_key_with_uv_reaches_aal3(
    metadata, client, headers, admin_headers
) -> None:
    changed = client.patch(
        "/v1/policy",
        json={"login_aal": 3, "webauthn_attestation": "attested"},
        headers=admin_headers,
    )
    assert changed.status_code == 200, changed.text
    key = hardware_key(metadata)
    started = client.post(
        "/v1/users/alice/enrolments",
        json={"method": "webauthn", "user_verification": "required"},
        headers=headers,
    ).json()
    assert started["options"]["attestation"] == "direct"
    confirmed = client.post(
        f"/v1/enrolments/{started['enrolment_id']}/confirm",
        json={"credential": key.create(started["options"])},
        headers=headers,
    )
    assert confirmed.status_code == 200, confirmed.text
    listed = client.get("/v1/users/alice/enrolments", headers=headers).json()[0]
    assert listed["authenticator"]["name"] == "Example Key 5"
    assert listed["authenticator"]["attested"] is True and listed["authenticator"]["max_aal"] == 3

    login = start_login(client, headers)
    assert login["required_aal"] == 3 and login["methods"] == ["webauthn"]
    options = login_options(client, headers, login["authentication_id"])
    assert options["userVerification"] == "required"
    token = claims(verify(client, headers, login["authentication_id"], key.get(options)))
    assert token["acr"] == "http://idmanagement.gov/ns/assurance/aal/3"
    assert token["amr"] == ["hwk", "user", "mfa"]

    client.patch("/v1/policy", json={"acr_format": "openid-eap"}, headers=admin_headers)
    login = start_login(client, headers)
    options = login_options(client, headers, login["authentication_id"])
    token = claims(verify(client, headers, login["authentication_id"], key.get(options)))
    assert token["acr"] == "phrh"


def test_without_attestation_a_key_is_aal2_at_most(metadata, client, headers) -> None:
    enrol_key(client, headers, SoftAuthenticator("localhost", ORIGIN))
    listed = client.get("/v1/users/alice/enrolments", headers=headers).json()[0]
    assert listed["authenticator"]["attested"] is False and listed["authenticator"]["max_aal"] == 2


def test_the_policy_chooses_which_models_may_register(
    metadata, client, headers, admin_headers
) -> None:
    client.patch("/v1/policy", json={"webauthn_attestation": "attested"}, headers=admin_headers)
    started = client.post(
        "/v1/users/alice/enrolments", json={"method": "webauthn"}, headers=headers
    ).json()
    unattested = SoftAuthenticator("localhost", ORIGIN).create(started["options"])
    refused = client.post(
        f"/v1/enrolments/{started['enrolment_id']}/confirm",
        json={"credential": unattested},
        headers=headers,
    )
    assert refused.status_code == 422 and "attested" in refused.json()["detail"]

    client.patch(
        "/v1/policy",
        json={"webauthn_attestation": "any", "webauthn_aaguid_deny": [str(MODEL)]},
        headers=admin_headers,
    )
    denied = client.post(
        f"/v1/enrolments/{started['enrolment_id']}/confirm",
        json={"credential": hardware_key(metadata).create(started["options"])},
        headers=headers,
    )
    assert denied.status_code == 422 and "not allowed" in denied.json()["detail"]


def test_a_newer_blob_that_revokes_a_model_suspends_its_credentials(
    metadata, container, client, headers
) -> None:
    key = hardware_key(metadata)
    enrolment_id = enrol_key(client, headers, key)
    login = start_login(client, headers)
    options = login_options(client, headers, login["authentication_id"])

    with pytest.raises(MetadataError, match="older"):
        metadata.store.install(metadata.publish(0))
    metadata.store.install(
        metadata.publish(2, ("FIDO_CERTIFIED_L2", "2024-01-01"), ("REVOKED", "2026-11-01"))
    )
    assert container.recheck_credentials()() == [uuid.UUID(enrolment_id)]

    shown = client.get(f"/v1/enrolments/{enrolment_id}", headers=headers).json()
    assert shown["status"] == "suspended" and "REVOKED" in shown["suspended_reason"]
    refused = verify(client, headers, login["authentication_id"], key.get(options))
    assert refused.status_code == 422
    assert "webauthn" not in start_login(client, headers)["methods"]
