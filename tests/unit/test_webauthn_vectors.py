"""The WebAuthn adapter against all 15 W3C WebAuthn Level 3 test vectors (§ "Test Vectors")."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from adapters.mds import EmptyMetadata
from adapters.webauthn import PyWebAuthnCeremonies
from application.ports import RelyingParty, WebAuthnError
from tests.softauthn import FakeMetadata, b64u, make_attestation_ca

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "standards-vectors.json").read_text())
L3 = VECTORS["webauthn_l3"]
CASES = {case["id"]: case for case in L3["cases"]}
TEST_CA = bytes.fromhex(L3["attestation_trust_root"]["attestation_ca_cert"])
ORIGIN, TOP_ORIGIN = L3["origin"], L3["top_origin_where_applicable"]
# The crossOrigin case carries `crossOrigin: true` and no `topOrigin` (a Level 2 browser);
# the port refuses those unless the adapter is told to accept them for framed relying parties.
FRAMED = RelyingParty(L3["rp_id"], "Example", (ORIGIN,), top_origins=(TOP_ORIGIN,))
UNFRAMED = RelyingParty(L3["rp_id"], "Example", (ORIGIN,))
LEGACY = PyWebAuthnCeremonies(accept_cross_origin_without_top_origin=True)
STRICT = PyWebAuthnCeremonies()
ATTESTATION_TYPES = {
    "none": "none",
    "packed": "basic",
    "tpm": "attca",
    "android-key": "basic",
    "apple": "anonca",
    "fido-u2f": "basic",
}
# py_webauthn 3.0.1 alone refuses these five (see the vectors' notes).
PY_WEBAUTHN_REJECTS = {
    "packed-es384",
    "packed-ed448",
    "tpm-es256",
    "android-key-es256",
    "fido-u2f-es256",
}
WITH_CHAIN = sorted(
    case_id
    for case_id, case in CASES.items()
    if case["derived_expectations"]["attestation_fmt"] != "none" and case_id != "packed-self-es256"
)


def registration(case: dict[str, Any]) -> dict[str, Any]:
    r = case["registration"]
    return {
        "id": r["credential_id_b64url"],
        "rawId": r["credential_id_b64url"],
        "type": "public-key",
        "response": {
            "clientDataJSON": r["clientDataJSON_b64url"],
            "attestationObject": r["attestationObject_b64url"],
        },
    }


def assertion(case: dict[str, Any]) -> dict[str, Any]:
    a = case["authentication"]
    return {
        "id": case["registration"]["credential_id_b64url"],
        "rawId": case["registration"]["credential_id_b64url"],
        "type": "public-key",
        "response": {
            "clientDataJSON": a["clientDataJSON_b64url"],
            "authenticatorData": a["authenticatorData_b64url"],
            "signature": a["signature_b64url"],
        },
    }


def metadata_trusting(case: dict[str, Any], root: bytes = TEST_CA) -> FakeMetadata:
    metadata = FakeMetadata()
    metadata.add(case["registration"]["aaguid"], roots=[root])
    return metadata


def register(case: dict[str, Any], metadata: Any) -> Any:
    return LEGACY.verify_registration(
        registration(case),
        rp=FRAMED,
        challenge=bytes.fromhex(case["registration"]["challenge"]),
        require_user_verification=False,
        metadata=metadata,
    )


def authenticate(case: dict[str, Any], public_key: bytes, ceremonies: Any = LEGACY) -> Any:
    return ceremonies.verify_authentication(
        assertion(case),
        rp=FRAMED,
        challenge=bytes.fromhex(case["authentication"]["challenge"]),
        public_key=public_key,
        require_user_verification=False,
    )


def test_the_vectors_file_holds_all_fifteen_cases_and_the_five_py_webauthn_rejects() -> None:
    assert len(CASES) == 15
    assert PY_WEBAUTHN_REJECTS.issubset(CASES)
    assert len(WITH_CHAIN) == 10


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_every_registration_verifies_with_the_flags_key_and_format_it_carries(
    case_id: str,
) -> None:
    case = CASES[case_id]
    expected = case["derived_expectations"]
    registered = register(case, metadata_trusting(case))
    flags = expected["registration_flags"]
    assert registered.credential_id.hex() == case["registration"]["credential_id"]
    assert registered.public_key.hex() == expected["credential_public_key_cose_hex"]
    assert registered.algorithm == expected["cose_alg"]
    assert registered.fmt == expected["attestation_fmt"]
    assert registered.attestation_type == (
        "self" if case_id == "packed-self-es256" else ATTESTATION_TYPES[registered.fmt]
    )
    assert registered.aaguid.replace("-", "") == case["registration"]["aaguid"]
    assert registered.sign_count == expected["registration_signCount"]
    assert (registered.user_present, registered.user_verified) == (flags["UP"], flags["UV"])
    assert (registered.backup_eligible, registered.backed_up) == (flags["BE"], flags["BS"])


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_every_attestation_chain_is_trusted_only_through_the_metadata_roots(case_id: str) -> None:
    case = CASES[case_id]
    assert register(case, metadata_trusting(case)).attested is (case_id in WITH_CHAIN)
    assert register(case, EmptyMetadata()).attested is False


@pytest.mark.parametrize("case_id", WITH_CHAIN)
def test_a_chain_that_does_not_reach_the_known_root_is_refused(case_id: str) -> None:
    other_root = make_attestation_ca("Another Root").der
    with pytest.raises(WebAuthnError, match="does not verify against the metadata roots"):
        register(CASES[case_id], metadata_trusting(CASES[case_id], root=other_root))


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_every_assertion_verifies_with_the_registered_key(case_id: str) -> None:
    case = CASES[case_id]
    expected = case["derived_expectations"]
    flags = expected["authentication_flags"]
    public_key = register(case, EmptyMetadata()).public_key
    verified = authenticate(case, public_key)
    assert verified.credential_id.hex() == case["registration"]["credential_id"]
    assert verified.sign_count == expected["authentication_signCount"]
    assert verified.user_verified is flags["UV"]
    assert (verified.backup_eligible, verified.backed_up) == (flags["BE"], flags["BS"])
    assert verified.user_handle is None


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_an_assertion_with_one_signature_bit_flipped_is_refused(case_id: str) -> None:
    case = CASES[case_id]
    public_key = register(case, EmptyMetadata()).public_key
    signature = bytearray(bytes.fromhex(case["authentication"]["signature"]))
    signature[len(signature) // 2] ^= 0x01
    tampered = assertion(case)
    tampered["response"]["signature"] = b64u(bytes(signature))
    with pytest.raises(WebAuthnError, match="signature does not verify"):
        LEGACY.verify_authentication(
            tampered,
            rp=FRAMED,
            challenge=bytes.fromhex(case["authentication"]["challenge"]),
            public_key=public_key,
            require_user_verification=False,
        )


@pytest.mark.parametrize("case_id", ["none-es256-topOrigin", "none-es256-crossOrigin"])
def test_a_cross_origin_ceremony_is_refused_for_a_relying_party_that_lists_no_top_origin(
    case_id: str,
) -> None:
    case = CASES[case_id]
    for ceremonies in (STRICT, LEGACY):
        with pytest.raises(WebAuthnError, match="not allowed"):
            ceremonies.verify_registration(
                registration(case),
                rp=UNFRAMED,
                challenge=bytes.fromhex(case["registration"]["challenge"]),
                require_user_verification=False,
                metadata=EmptyMetadata(),
            )


def test_a_top_origin_in_the_relying_partys_list_is_accepted_on_both_ceremonies() -> None:
    case = CASES["none-es256-topOrigin"]
    registered = STRICT.verify_registration(
        registration(case),
        rp=FRAMED,
        challenge=bytes.fromhex(case["registration"]["challenge"]),
        require_user_verification=False,
        metadata=EmptyMetadata(),
    )
    assert authenticate(case, registered.public_key, STRICT).sign_count == 0


def test_a_top_origin_outside_the_relying_partys_list_is_refused_by_name() -> None:
    case = CASES["none-es256-topOrigin"]
    elsewhere = RelyingParty(L3["rp_id"], "Example", (ORIGIN,), top_origins=("https://x.test",))
    with pytest.raises(
        WebAuthnError, match=re.escape("top origin https://example.com is not allowed")
    ):
        STRICT.verify_registration(
            registration(case),
            rp=elsewhere,
            challenge=bytes.fromhex(case["registration"]["challenge"]),
            require_user_verification=False,
            metadata=EmptyMetadata(),
        )


def test_cross_origin_without_top_origin_is_refused_unless_the_adapter_accepts_level_2() -> None:
    case = CASES["none-es256-crossOrigin"]
    with pytest.raises(WebAuthnError, match="cross-origin ceremony without a topOrigin"):
        STRICT.verify_registration(
            registration(case),
            rp=FRAMED,
            challenge=bytes.fromhex(case["registration"]["challenge"]),
            require_user_verification=False,
            metadata=EmptyMetadata(),
        )
    public_key = register(case, EmptyMetadata()).public_key
    with pytest.raises(WebAuthnError, match="cross-origin ceremony without a topOrigin"):
        authenticate(case, public_key, STRICT)
    assert authenticate(case, public_key, LEGACY).user_verified is True


def test_a_same_origin_vector_needs_no_top_origins() -> None:
    case = CASES["none-es256"]
    registered = STRICT.verify_registration(
        registration(case),
        rp=UNFRAMED,
        challenge=bytes.fromhex(case["registration"]["challenge"]),
        require_user_verification=False,
        metadata=EmptyMetadata(),
    )
    assert registered.fmt == "none"
