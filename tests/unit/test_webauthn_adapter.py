"""The WebAuthn adapter driven end to end by the software authenticator: what it accepts,
what it refuses and with which message, and that nothing but WebAuthnError ever leaves it."""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as dt
import functools
import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fido2 import cbor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.mds import EmptyMetadata
from adapters.webauthn import PyWebAuthnCeremonies
from application.ports import RegisteredCredential, RelyingParty, WebAuthnError
from tests.fakes import FakeClock
from tests.softauthn import (
    FLAG,
    AttestationCA,
    FakeMetadata,
    SoftAuthenticator,
    SoftAuthenticatorError,
    b64u,
    make_attestation_ca,
    unb64u,
)

ORIGIN = "http://localhost:8000"
RP = RelyingParty("localhost", "Tessera", (ORIGIN,))
CHALLENGE = hashlib.sha256(b"registration").digest()
LOGIN_CHALLENGE = hashlib.sha256(b"login").digest()
USER = b"user-handle-1"
AAGUID = uuid.UUID("6028b017-b1d4-4c02-b4b3-afcdafc96bb2")
ceremonies = PyWebAuthnCeremonies()


def creation_options(
    *,
    challenge: bytes = CHALLENGE,
    exclude: list[bytes] | None = None,
    attachment: str | None = "platform",
    resident_key: str = "required",
    user_verification: str = "required",
    attestation: str = "none",
) -> dict[str, Any]:
    return ceremonies.creation_options(
        rp=RP,
        user_handle=USER,
        user_name="alice@example.org",
        display_name="Alice",
        challenge=challenge,
        exclude=exclude or [],
        attachment=attachment,
        resident_key=resident_key,
        user_verification=user_verification,
        attestation=attestation,
        timeout_ms=120_000,
    )


def request_options(
    allow: list[tuple[bytes, tuple[str, ...]]] | None = None, *, challenge: bytes = LOGIN_CHALLENGE
) -> dict[str, Any]:
    return ceremonies.request_options(
        rp=RP,
        challenge=challenge,
        allow=allow or [],
        user_verification="required",
        timeout_ms=60_000,
    )


def verify_registration(
    response: dict[str, Any],
    *,
    metadata: Any = None,
    uv: bool = True,
    challenge: bytes = CHALLENGE,
    using: PyWebAuthnCeremonies = ceremonies,
) -> RegisteredCredential:
    return using.verify_registration(
        response,
        rp=RP,
        challenge=challenge,
        require_user_verification=uv,
        metadata=metadata or EmptyMetadata(),
    )


def verify_assertion(
    response: dict[str, Any],
    public_key: bytes,
    *,
    uv: bool = True,
    challenge: bytes = LOGIN_CHALLENGE,
) -> Any:
    return ceremonies.verify_authentication(
        response,
        rp=RP,
        challenge=challenge,
        public_key=public_key,
        require_user_verification=uv,
    )


def authenticator(**kwargs: Any) -> SoftAuthenticator:
    return SoftAuthenticator("localhost", ORIGIN, **kwargs)


def registered(**kwargs: Any) -> tuple[SoftAuthenticator, RegisteredCredential]:
    device = authenticator(**kwargs)
    return device, verify_registration(device.create(creation_options()))


def with_member(response: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy with `path` ("response.signature") set, or removed when value is DELETE."""
    changed = copy.deepcopy(response)
    *parents, last = path.split(".")
    target = changed
    for name in parents:
        target = target[name]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return changed


DELETE = object()


# --- the happy paths ------------------------------------------------------------------------


def test_a_passkey_registers_and_logs_in_with_its_counter_and_user_handle_returned() -> None:
    device = authenticator()
    registration = verify_registration(device.create(creation_options()))
    assert registration.fmt == "none"
    assert registration.attestation_type == "none"
    assert registration.attested is False
    assert registration.algorithm == -7
    assert registration.aaguid == "00000000-0000-0000-0000-000000000000"
    assert (registration.user_present, registration.user_verified) == (True, True)
    assert registration.transports == ("internal",)
    assert registration.sign_count == 0
    first = verify_assertion(device.get(request_options()), registration.public_key)
    second = verify_assertion(device.get(request_options()), registration.public_key)
    assert (first.sign_count, second.sign_count) == (1, 2)
    assert first.credential_id == registration.credential_id
    assert first.user_handle == USER
    assert first.user_verified is True


def test_a_counter_that_goes_backwards_is_returned_for_the_caller_to_judge() -> None:
    device, registration = registered()
    verify_assertion(device.get(request_options()), registration.public_key)
    device.get(request_options(), counter=41)
    cloned = verify_assertion(device.get(request_options(), counter=7), registration.public_key)
    assert cloned.sign_count == 7


@pytest.mark.parametrize(
    ("algorithm", "cose"),
    [("ES256", -7), ("ES384", -35), ("ES512", -36), ("EdDSA", -8), ("Ed448", -53), ("RS256", -257)],
)
def test_every_offered_algorithm_and_ed448_run_both_ceremonies(algorithm: str, cose: int) -> None:
    device, registration = registered(algorithm=algorithm, attestation="packed-self")
    assert registration.algorithm == cose
    assert registration.attestation_type == "self"
    assertion = verify_assertion(device.get(request_options()), registration.public_key)
    assert assertion.sign_count == 1


@pytest.mark.parametrize(("be", "bs"), [(False, False), (True, False), (True, True)])
def test_backup_eligibility_and_state_are_read_back_from_both_ceremonies(
    be: bool, bs: bool
) -> None:
    device, registration = registered(backup_eligible=be, backed_up=bs)
    assert (registration.backup_eligible, registration.backed_up) == (be, bs)
    assertion = verify_assertion(device.get(request_options()), registration.public_key)
    assert (assertion.backup_eligible, assertion.backed_up) == (be, bs)


def test_backed_up_without_backup_eligible_is_refused() -> None:
    device = authenticator(backup_eligible=False, backed_up=True)
    with pytest.raises(WebAuthnError, match="the BS flag is set without the BE flag"):
        verify_registration(device.create(creation_options()))


def test_user_verification_not_required_accepts_an_assertion_without_uv() -> None:
    device, registration = registered()
    assertion = verify_assertion(
        device.get(request_options(), uv=False), registration.public_key, uv=False
    )
    assert assertion.user_verified is False


def test_a_non_resident_credential_logs_in_by_id_without_a_user_handle() -> None:
    device = authenticator()
    registration = verify_registration(device.create(creation_options(), resident=False))
    allow = [(registration.credential_id, registration.transports)]
    assertion = verify_assertion(device.get(request_options(allow)), registration.public_key)
    assert assertion.user_handle is None
    with pytest.raises(SoftAuthenticatorError, match="NotAllowedError"):
        device.get(request_options())


def test_the_soft_authenticator_refuses_an_excluded_credential() -> None:
    device, registration = registered()
    with pytest.raises(SoftAuthenticatorError, match="InvalidStateError"):
        device.create(creation_options(exclude=[registration.credential_id]))


def test_members_a_browser_adds_to_its_json_are_accepted() -> None:
    device = authenticator()
    response = device.create(creation_options())
    response["clientExtensionResults"] = {"credProps": {"rk": True}, "prf": {"enabled": False}}
    response["response"]["somethingNew"] = "ignored"
    response["futureMember"] = [1, 2, 3]
    registration = verify_registration(response)
    assertion = device.get(request_options())
    assertion["response"]["attestationObject"] = None
    assertion["authenticatorAttachment"] = "cross-platform"
    assert verify_assertion(assertion, registration.public_key).sign_count == 1


def test_the_credential_id_is_read_from_raw_id_or_else_id() -> None:
    device = authenticator()
    response = device.create(creation_options())
    expected = unb64u(response["rawId"])
    assert ceremonies.credential_id(response) == expected
    assert ceremonies.credential_id(with_member(response, "rawId", DELETE)) == expected
    assert ceremonies.credential_id({"rawId": response["rawId"] + "=="}) == expected


# --- attestation and metadata ----------------------------------------------------------------


def test_packed_self_attestation_is_verified_but_never_attested() -> None:
    metadata = FakeMetadata()
    metadata.add(AAGUID.bytes, roots=[make_attestation_ca().der])
    device = authenticator(attestation="packed-self", aaguid=AAGUID.bytes)
    registration = verify_registration(device.create(creation_options()), metadata=metadata)
    assert (registration.fmt, registration.attestation_type) == ("packed", "self")
    assert registration.attested is False
    assert registration.aaguid == str(AAGUID)


def test_a_packed_chain_to_the_metadata_root_of_its_aaguid_is_attested() -> None:
    ca = make_attestation_ca()
    metadata = FakeMetadata()
    metadata.add(AAGUID.bytes, roots=[ca.der])
    device = authenticator(attestation="packed-x5c", ca=ca, aaguid=AAGUID.bytes)
    registration = verify_registration(
        device.create(creation_options(attestation="direct")), metadata=metadata
    )
    assert (registration.attestation_type, registration.attested) == ("basic", True)


def test_a_packed_chain_to_another_root_than_the_metadata_names_is_refused() -> None:
    metadata = FakeMetadata()
    metadata.add(AAGUID.bytes, roots=[make_attestation_ca("Some Other Root").der])
    device = authenticator(attestation="packed-x5c", ca=make_attestation_ca(), aaguid=AAGUID.bytes)
    with pytest.raises(WebAuthnError, match=f"metadata roots of {AAGUID}"):
        verify_registration(device.create(creation_options()), metadata=metadata)


def test_a_packed_chain_of_an_unknown_aaguid_is_verified_but_not_attested() -> None:
    device = authenticator(attestation="packed-x5c", ca=make_attestation_ca(), aaguid=AAGUID.bytes)
    registration = verify_registration(device.create(creation_options()), metadata=FakeMetadata())
    assert (registration.attestation_type, registration.attested) == ("basic", False)


def test_an_expired_attestation_certificate_does_not_verify_at_the_clocks_time() -> None:
    ca = make_attestation_ca()
    metadata = FakeMetadata()
    metadata.add(AAGUID.bytes, roots=[ca.der])
    device = authenticator(attestation="packed-x5c", ca=ca, aaguid=AAGUID.bytes)
    response = device.create(creation_options())
    later = PyWebAuthnCeremonies(clock=FakeClock(dt.datetime(2100, 1, 1, tzinfo=dt.UTC)))
    with pytest.raises(WebAuthnError, match="expired"):
        verify_registration(response, metadata=metadata, using=later)
    assert verify_registration(response, metadata=metadata).attested is True


@dataclass(frozen=True)
class _FlawedCA(AttestationCA):
    """Issues leaves that break one §8.2.1 requirement."""

    flaw: str = ""

    def issue(self, aaguid: bytes | None, **kwargs: Any) -> tuple[Any, bytes]:
        if self.flaw == "wrong-aaguid":
            return super().issue(uuid.uuid4().bytes)
        if self.flaw == "wrong-unit":
            return super().issue(aaguid, unit="Something Else")
        return super().issue(aaguid, ca=True)


@pytest.mark.parametrize(
    ("flaw", "message"),
    [
        ("wrong-aaguid", "AAGUID does not match"),
        ("wrong-unit", "OU is not"),
        ("ca-leaf", "is a CA certificate"),
    ],
)
def test_a_packed_certificate_breaking_the_requirements_is_refused(flaw: str, message: str) -> None:
    real = make_attestation_ca()
    ca = _FlawedCA(real.key, real.certificate, flaw)
    device = authenticator(attestation="packed-x5c", ca=ca, aaguid=AAGUID.bytes)
    with pytest.raises(WebAuthnError, match=message):
        verify_registration(device.create(creation_options()))


def _safetynet(
    response: dict[str, Any], ca: AttestationCA, *, nonce: str | None = None, **payload: Any
) -> dict[str, Any]:
    """Re-wrap a registration as android-safetynet: an RS256 JWS from attest.android.com."""
    attestation = cbor.decode(unb64u(response["response"]["attestationObject"]))
    auth_data = attestation["authData"]
    client_hash = hashlib.sha256(unb64u(response["response"]["clientDataJSON"])).digest()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _, leaf = ca.issue(None, common_name="attest.android.com", key=key)
    expected = base64.b64encode(hashlib.sha256(auth_data + client_hash).digest()).decode()
    body = {
        "nonce": expected if nonce is None else nonce,
        "timestampMs": int(time.time() * 1000),
        "ctsProfileMatch": True,
        "basicIntegrity": True,
        **payload,
    }
    header = {"alg": "RS256", "x5c": [base64.b64encode(leaf).decode()]}
    signed = f"{b64u(json.dumps(header).encode())}.{b64u(json.dumps(body).encode())}"
    signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    statement = {"ver": "12345", "response": f"{signed}.{b64u(signature)}".encode()}
    rewrapped = cbor.encode(
        {"fmt": "android-safetynet", "attStmt": statement, "authData": auth_data}
    )
    return with_member(response, "response.attestationObject", b64u(rewrapped))


def test_an_android_safetynet_attestation_is_verified_and_attested_through_metadata() -> None:
    ca = make_attestation_ca()
    metadata = FakeMetadata()
    metadata.add(AAGUID.bytes, roots=[ca.der])
    device = authenticator(aaguid=AAGUID.bytes)
    response = _safetynet(device.create(creation_options()), ca)
    registration = verify_registration(response, metadata=metadata)
    assert (registration.fmt, registration.attestation_type) == ("android-safetynet", "basic")
    assert registration.attested is True


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nonce": "AAAA"}, "nonce does not match"),
        ({"ctsProfileMatch": False}, "ctsProfileMatch is not true"),
        ({"timestampMs": 1_000_000}, "stale"),
    ],
)
def test_a_wrong_android_safetynet_response_is_refused(
    change: dict[str, Any], message: str
) -> None:
    device = authenticator(aaguid=AAGUID.bytes)
    response = _safetynet(device.create(creation_options()), make_attestation_ca(), **change)
    with pytest.raises(WebAuthnError, match=message):
        verify_registration(response)


# --- refusals, with the message the API will show --------------------------------------------


def test_a_registration_for_another_challenge_is_refused() -> None:
    response = authenticator().create(creation_options())
    with pytest.raises(WebAuthnError, match=r"^the challenge does not match$"):
        verify_registration(response, challenge=b"another challenge, 32 bytes long")


def test_an_assertion_for_another_challenge_is_refused() -> None:
    device, registration = registered()
    with pytest.raises(WebAuthnError, match=r"^the challenge does not match$"):
        verify_assertion(
            device.get(request_options()), registration.public_key, challenge=CHALLENGE
        )


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "http://localhost:9000", "http://localhost", "null"]
)
def test_an_origin_outside_the_relying_partys_list_is_refused_by_name(origin: str) -> None:
    device = authenticator()
    with pytest.raises(WebAuthnError, match=f"^origin {re.escape(origin)} is not allowed$"):
        verify_registration(device.create(creation_options(), origin=origin))
    registration = verify_registration(device.create(creation_options()))
    with pytest.raises(WebAuthnError, match=f"^origin {re.escape(origin)} is not allowed$"):
        verify_assertion(device.get(request_options(), origin=origin), registration.public_key)


def test_a_second_allowed_origin_is_accepted() -> None:
    rp = RelyingParty("localhost", "Tessera", (ORIGIN, "http://localhost:9000"))
    response = authenticator().create(creation_options(), origin="http://localhost:9000")
    registration = ceremonies.verify_registration(
        response,
        rp=rp,
        challenge=CHALLENGE,
        require_user_verification=True,
        metadata=EmptyMetadata(),
    )
    assert registration.fmt == "none"


def test_a_credential_scoped_to_another_rp_id_is_refused_on_the_rp_id_hash() -> None:
    options = creation_options()
    options["rp"]["id"] = "example.org"
    with pytest.raises(WebAuthnError, match=r"^the rpIdHash does not match localhost$"):
        verify_registration(authenticator().create(options))
    device, registration = registered()
    login = request_options()
    login["rpId"] = "example.org"
    device.credentials[registration.credential_id].rp_id = "example.org"
    with pytest.raises(WebAuthnError, match=r"^the rpIdHash does not match localhost$"):
        verify_assertion(device.get(login), registration.public_key)


def test_a_ceremony_without_user_presence_is_refused() -> None:
    message = r"^user presence is required but the UP flag is not set$"
    device = authenticator()
    with pytest.raises(WebAuthnError, match=message):
        verify_registration(
            device.create(creation_options(), flags_override=FLAG.UV | FLAG.AT), uv=False
        )
    registration = verify_registration(device.create(creation_options()))
    with pytest.raises(WebAuthnError, match=message):
        verify_assertion(
            device.get(request_options(), flags_override=FLAG.UV), registration.public_key
        )


def test_user_verification_required_but_missing_is_refused_on_both_ceremonies() -> None:
    message = r"^user verification was required but the UV flag is not set$"
    with pytest.raises(WebAuthnError, match=message):
        verify_registration(authenticator(uv=False).create(creation_options()))
    device, registration = registered()
    with pytest.raises(WebAuthnError, match=message):
        verify_assertion(device.get(request_options(), uv=False), registration.public_key)


def test_a_registration_response_is_not_an_assertion_and_the_other_way_round() -> None:
    device, registration = registered()
    with pytest.raises(WebAuthnError, match=r"expected 'webauthn\.get'"):
        verify_assertion(device.create(creation_options()), registration.public_key)
    with pytest.raises(WebAuthnError, match=r"expected 'webauthn\.create'"):
        verify_registration(device.get(request_options()))


def test_an_assertion_with_a_broken_signature_is_refused() -> None:
    device, registration = registered()
    assertion = device.get(request_options())
    signature = bytearray(unb64u(assertion["response"]["signature"]))
    signature[-1] ^= 0x55
    with pytest.raises(WebAuthnError, match=r"^the signature does not verify$"):
        verify_assertion(
            with_member(assertion, "response.signature", b64u(bytes(signature))),
            registration.public_key,
        )


def test_an_assertion_checked_against_another_credentials_key_is_refused() -> None:
    device, _ = registered()
    _, other = registered()
    with pytest.raises(WebAuthnError, match=r"^the signature does not verify$"):
        verify_assertion(device.get(request_options()), other.public_key)


def test_tampered_client_data_breaks_the_signature() -> None:
    device, registration = registered()
    assertion = device.get(request_options())
    client = json.loads(unb64u(assertion["response"]["clientDataJSON"]))
    client["tampered"] = True
    tampered = with_member(assertion, "response.clientDataJSON", b64u(json.dumps(client).encode()))
    with pytest.raises(WebAuthnError, match=r"^the signature does not verify$"):
        verify_assertion(tampered, registration.public_key)
    packed = authenticator(attestation="packed-self").create(creation_options())
    client = json.loads(unb64u(packed["response"]["clientDataJSON"]))
    # The same members in other bytes: the attestation signature covers the bytes.
    forged = with_member(
        packed, "response.clientDataJSON", b64u(json.dumps(client, indent=1).encode())
    )
    with pytest.raises(WebAuthnError, match="self-attestation signature does not verify"):
        verify_registration(forged)


# --- malformed input never raises anything but WebAuthnError ----------------------------------


def _truncated(text: str) -> str:
    return b64u(unb64u(text)[:-5])


REGISTRATION_DAMAGE: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = [
    ("no response", lambda r: with_member(r, "response", DELETE)),
    ("response is a list", lambda r: with_member(r, "response", [])),
    ("no clientDataJSON", lambda r: with_member(r, "response.clientDataJSON", DELETE)),
    ("clientDataJSON not base64url", lambda r: with_member(r, "response.clientDataJSON", "!!")),
    ("clientDataJSON a number", lambda r: with_member(r, "response.clientDataJSON", 7)),
    ("clientDataJSON not JSON", lambda r: with_member(r, "response.clientDataJSON", b64u(b"{"))),
    ("clientDataJSON a list", lambda r: with_member(r, "response.clientDataJSON", b64u(b"[]"))),
    ("no attestationObject", lambda r: with_member(r, "response.attestationObject", DELETE)),
    ("attestationObject bad CBOR", lambda r: with_member(r, "response.attestationObject", "_w")),
    (
        "attestationObject a CBOR list",
        lambda r: with_member(r, "response.attestationObject", b64u(cbor.encode([1]))),
    ),
    (
        "attestationObject truncated",
        lambda r: with_member(
            r, "response.attestationObject", _truncated(r["response"]["attestationObject"])
        ),
    ),
    (
        "authData truncated",
        lambda r: with_member(
            r,
            "response.attestationObject",
            b64u(
                cbor.encode(
                    {"fmt": "none", "attStmt": {}, "authData": bytes(40)},
                )
            ),
        ),
    ),
    ("rawId a number", lambda r: with_member(r, "rawId", 12)),
    ("rawId not base64url", lambda r: with_member(r, "rawId", "a+b/")),
    ("rawId of one character", lambda r: with_member(r, "rawId", "A")),
    ("id and rawId differ", lambda r: with_member(r, "id", b64u(b"other"))),
    ("no ids", lambda r: with_member(with_member(r, "id", DELETE), "rawId", DELETE)),
    ("wrong type", lambda r: with_member(r, "type", "password")),
    ("transports not a list", lambda r: with_member(r, "response.transports", "usb")),
]


@pytest.mark.parametrize(
    "damage", [d for _, d in REGISTRATION_DAMAGE], ids=[n for n, _ in REGISTRATION_DAMAGE]
)
def test_a_malformed_registration_is_a_webauthn_error(
    damage: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    response = authenticator().create(creation_options())
    with pytest.raises(WebAuthnError):
        verify_registration(damage(response))


ASSERTION_DAMAGE: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = [
    ("no authenticatorData", lambda a: with_member(a, "response.authenticatorData", DELETE)),
    (
        "authenticatorData truncated",
        lambda a: with_member(
            a, "response.authenticatorData", _truncated(a["response"]["authenticatorData"])
        ),
    ),
    ("authenticatorData empty", lambda a: with_member(a, "response.authenticatorData", "")),
    ("no signature", lambda a: with_member(a, "response.signature", DELETE)),
    ("signature a list", lambda a: with_member(a, "response.signature", ["AA"])),
    ("userHandle a number", lambda a: with_member(a, "response.userHandle", 5)),
    ("userHandle not base64url", lambda a: with_member(a, "response.userHandle", "%%")),
    ("credential a list", lambda a: []),
    ("credential None", lambda a: None),
]


@pytest.mark.parametrize(
    "damage", [d for _, d in ASSERTION_DAMAGE], ids=[n for n, _ in ASSERTION_DAMAGE]
)
def test_a_malformed_assertion_is_a_webauthn_error(
    damage: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    device, registration = registered()
    with pytest.raises(WebAuthnError):
        verify_assertion(damage(device.get(request_options())), registration.public_key)


@pytest.mark.parametrize("stored", [b"", b"\x00", b"\xa0", cbor.encode({1: 2, 3: -7}), b"\x04"])
def test_a_malformed_stored_public_key_is_a_webauthn_error(stored: bytes) -> None:
    device, _ = registered()
    with pytest.raises(WebAuthnError):
        verify_assertion(device.get(request_options()), stored)


def test_credential_id_refuses_what_it_cannot_decode() -> None:
    for credential in ({}, {"rawId": None, "id": None}, {"rawId": "***"}, {"rawId": ""}, []):
        with pytest.raises(WebAuthnError):
            ceremonies.credential_id(credential)  # type: ignore[arg-type]


@functools.cache
def _signed_assertion() -> tuple[dict[str, Any], bytes]:
    device, registration = registered()
    return device.get(request_options()), registration.public_key


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    member=st.sampled_from(["authenticatorData", "signature"]),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_any_change_to_one_byte_of_a_signed_assertion_is_refused(
    member: str, position: int, flip: int
) -> None:
    assertion, public_key = _signed_assertion()
    data = bytearray(unb64u(assertion["response"][member]))
    data[position % len(data)] ^= flip
    with pytest.raises(WebAuthnError):
        verify_assertion(
            with_member(assertion, f"response.{member}", b64u(bytes(data))), public_key
        )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    path=st.sampled_from(
        [
            "rawId",
            "type",
            "response",
            "response.clientDataJSON",
            "response.attestationObject",
            "response.transports",
        ]
    ),
    value=JSON | st.binary(max_size=64).map(b64u),
)
def test_any_json_in_any_registration_member_gives_only_webauthn_errors(
    path: str, value: Any
) -> None:
    response = _registration_response()
    with contextlib.suppress(WebAuthnError):
        verify_registration(with_member(response, path, value))


@functools.cache
def _registration_response() -> dict[str, Any]:
    return authenticator().create(creation_options())


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=300))
def test_any_bytes_as_an_attestation_object_give_only_webauthn_errors(body: bytes) -> None:
    response = with_member(_registration_response(), "response.attestationObject", b64u(body))
    with pytest.raises(WebAuthnError):
        verify_registration(response)


# --- options ----------------------------------------------------------------------------------


def _is_b64url(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_-]+", value) is not None


@pytest.mark.parametrize("attachment", ["platform", "cross-platform", None])
@pytest.mark.parametrize("resident_key", ["discouraged", "preferred", "required"])
@pytest.mark.parametrize("user_verification", ["discouraged", "preferred", "required"])
def test_creation_options_are_level_3_json_with_the_enum_strings_unchanged(
    attachment: str | None, resident_key: str, user_verification: str
) -> None:
    options = creation_options(
        exclude=[b"\x01\x02\x03", b"\xff" * 40],
        attachment=attachment,
        resident_key=resident_key,
        user_verification=user_verification,
        attestation="direct",
    )
    json.dumps(options)  # plain JSON, nothing left as bytes
    assert options["rp"] == {"id": "localhost", "name": "Tessera"}
    assert options["user"] == {
        "id": b64u(USER),
        "name": "alice@example.org",
        "displayName": "Alice",
    }
    assert _is_b64url(options["challenge"]) and unb64u(options["challenge"]) == CHALLENGE
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-7, -8, -35, -36, -257]
    assert {p["type"] for p in options["pubKeyCredParams"]} == {"public-key"}
    assert [unb64u(c["id"]) for c in options["excludeCredentials"]] == [
        b"\x01\x02\x03",
        b"\xff" * 40,
    ]
    assert all(
        _is_b64url(c["id"]) and c["type"] == "public-key" for c in options["excludeCredentials"]
    )
    selection = options["authenticatorSelection"]
    assert selection.get("authenticatorAttachment") == attachment
    assert selection["residentKey"] == resident_key
    assert selection["requireResidentKey"] is (resident_key == "required")
    assert selection["userVerification"] == user_verification
    assert options["attestation"] == "direct"
    assert options["timeout"] == 120_000


def test_request_options_for_a_passkey_have_an_empty_allow_list() -> None:
    options = request_options()
    assert options == {
        "challenge": b64u(LOGIN_CHALLENGE),
        "timeout": 60_000,
        "rpId": "localhost",
        "allowCredentials": [],
        "userVerification": "required",
    }


def test_request_options_name_the_allowed_credentials_with_their_known_transports() -> None:
    options = request_options([(b"\x01" * 16, ("usb", "nfc", "telepathy")), (b"\x02", ())])
    assert options["allowCredentials"] == [
        {"id": b64u(b"\x01" * 16), "type": "public-key", "transports": ["usb", "nfc"]},
        {"id": b64u(b"\x02"), "type": "public-key"},
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"attachment": "implant"},
        {"resident_key": "maybe"},
        {"user_verification": "REQUIRED"},
        {"attestation": "everything"},
        {"challenge": b"short"},
    ],
)
def test_creation_options_refuse_values_webauthn_does_not_define(change: dict[str, Any]) -> None:
    with pytest.raises(WebAuthnError):
        creation_options(**change)


def test_request_options_refuse_a_short_challenge_or_unknown_user_verification() -> None:
    with pytest.raises(WebAuthnError):
        request_options(challenge=b"short")
    with pytest.raises(WebAuthnError):
        ceremonies.request_options(
            rp=RP, challenge=CHALLENGE, allow=[], user_verification="always", timeout_ms=1
        )
