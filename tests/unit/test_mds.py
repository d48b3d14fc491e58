"""The MDS3 adapter on self-made BLOBs: what verifies, what does not, and what a lookup says."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding

from adapters.mds import EmptyMetadata, MetadataError, load_metadata, parse_metadata
from tests.softauthn import (
    MdsSigner,
    b64u,
    make_attestation_ca,
    make_mds_blob,
    make_mds_root,
    mds_entry,
    unb64u,
)

KEY = str(uuid.UUID("2fc0579f-8113-47ea-b116-bb5a8db9202a"))
OTHER = str(uuid.UUID("ee882879-721c-4913-9775-3dfcce97072a"))


@pytest.fixture(scope="module")
def signer() -> MdsSigner:
    return make_mds_root("RS256")


@pytest.fixture(scope="module")
def attestation_root() -> bytes:
    return make_attestation_ca().der


@pytest.fixture
def blob(signer: MdsSigner, attestation_root: bytes) -> bytes:
    entries = [
        mds_entry(
            KEY,
            description="Example Key",
            roots=[attestation_root],
            icon="data:image/png;base64,iVBORw0KGgo=",
        ),
        mds_entry(OTHER, description="Other Key", statuses=[("FIDO_CERTIFIED", "2023-05-01")]),
        {"aaid": "4e4e#4005", "statusReports": [], "timeOfLastStatusChange": "2020-01-01"},
    ]
    return make_mds_blob(entries, serial=42, signer=signer)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_a_blob_signed_under_the_root_verifies_and_gives_its_serial(algorithm: str) -> None:
    signer = make_mds_root(algorithm)
    metadata = parse_metadata(
        make_mds_blob([mds_entry(KEY)], serial=7, signer=signer), signer.root_der
    )
    assert metadata.serial == 7
    assert metadata.lookup(KEY) is not None


def test_a_lookup_gives_description_icon_statuses_and_der_roots(
    blob: bytes,
    signer: MdsSigner,
    attestation_root: bytes,
) -> None:
    info = parse_metadata(blob, signer.root_pem).lookup(KEY)
    assert info is not None
    assert info.aaguid == KEY
    assert info.description == "Example Key"
    assert info.icon == "data:image/png;base64,iVBORw0KGgo="
    assert (info.certification, info.status, info.compromised) == (
        "FIDO_CERTIFIED_L1",
        "FIDO_CERTIFIED_L1",
        False,
    )
    assert info.root_certificates == (attestation_root,)


def test_a_lookup_ignores_case_and_hyphens_and_knows_nothing_else(
    blob: bytes,
    signer: MdsSigner,
) -> None:
    metadata = parse_metadata(blob, signer.root_der)
    assert metadata.lookup(KEY.upper()) == metadata.lookup(KEY)
    assert metadata.lookup(KEY.replace("-", "")) == metadata.lookup(KEY)
    assert metadata.lookup(str(uuid.uuid4())) is None
    assert metadata.lookup("not an aaguid") is None
    assert len(metadata.entries) == 2  # the UAF entry has no AAGUID to be found by


def test_the_wrong_root_fails(blob: bytes) -> None:
    with pytest.raises(MetadataError, match="does not verify"):
        parse_metadata(blob, make_mds_root("RS256").root_der)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_a_tampered_payload_fails(algorithm: str) -> None:
    signer = make_mds_root(algorithm)
    header, payload, signature = make_mds_blob([mds_entry(KEY)], serial=7, signer=signer).split(
        b"."
    )
    claims = json.loads(unb64u(payload.decode()))
    claims["no"] = 8
    forged = b".".join([header, b64u(json.dumps(claims).encode()).encode(), signature])
    with pytest.raises(MetadataError, match="does not verify"):
        parse_metadata(forged, signer.root_der)


def test_a_blob_whose_x5c_is_not_issued_by_the_root_fails(signer: MdsSigner) -> None:
    impostor = make_mds_root("RS256")
    blob = make_mds_blob([mds_entry(KEY)], serial=1, signer=impostor)
    with pytest.raises(MetadataError, match="does not verify"):
        parse_metadata(blob, signer.root_der)


@pytest.mark.parametrize(
    "status",
    [
        "REVOKED",
        "USER_KEY_REMOTE_COMPROMISE",
        "USER_KEY_PHYSICAL_COMPROMISE",
        "ATTESTATION_KEY_COMPROMISE",
    ],
)
def test_a_revoked_or_compromised_model_is_flagged(signer: MdsSigner, status: str) -> None:
    entry = mds_entry(KEY, statuses=[("FIDO_CERTIFIED_L2", "2022-01-01"), (status, "2024-03-01")])
    info = parse_metadata(make_mds_blob([entry], serial=3, signer=signer), signer.root_der).lookup(
        KEY
    )
    assert info is not None
    assert info.compromised is True
    assert info.status == status
    assert info.certification == "FIDO_CERTIFIED_L2"


@pytest.mark.parametrize("status", ["UPDATE_AVAILABLE", "USER_VERIFICATION_BYPASS", "RETIRED"])
def test_other_statuses_are_not_a_compromise(signer: MdsSigner, status: str) -> None:
    entry = mds_entry(KEY, statuses=[("FIDO_CERTIFIED_L1", "2022-01-01"), (status, "2024-03-01")])
    info = parse_metadata(make_mds_blob([entry], serial=3, signer=signer), signer.root_der).lookup(
        KEY
    )
    assert info is not None
    assert (info.status, info.compromised) == (status, False)


def test_the_latest_status_is_chosen_by_effective_date_not_list_order(signer: MdsSigner) -> None:
    entry = mds_entry(
        KEY,
        statuses=[
            ("FIDO_CERTIFIED_L3", "2025-06-01"),
            ("UPDATE_AVAILABLE", "2024-01-01"),
            ("FIDO_CERTIFIED_L1", "2021-01-01"),
        ],
    )
    info = parse_metadata(make_mds_blob([entry], serial=3, signer=signer), signer.root_der).lookup(
        KEY
    )
    assert info is not None
    assert (info.status, info.certification) == ("FIDO_CERTIFIED_L3", "FIDO_CERTIFIED_L3")


def test_load_metadata_reads_the_blob_and_a_pem_or_der_root_file(
    tmp_path: Path,
    blob: bytes,
    signer: MdsSigner,
) -> None:
    (tmp_path / "blob.jwt").write_bytes(blob)
    (tmp_path / "root.pem").write_bytes(signer.root_pem)
    (tmp_path / "root.der").write_bytes(signer.root_der)
    for root in ("root.pem", "root.der"):
        assert load_metadata(tmp_path / "blob.jwt", tmp_path / root).serial == 42


def test_a_missing_file_is_a_metadata_error(tmp_path: Path, signer: MdsSigner) -> None:
    (tmp_path / "root.der").write_bytes(signer.root_der)
    with pytest.raises(MetadataError, match="cannot read"):
        load_metadata(tmp_path / "absent.jwt", tmp_path / "root.der")
    with pytest.raises(MetadataError, match="cannot read"):
        load_metadata(tmp_path / "root.der", tmp_path / "absent.der")


def test_a_root_file_that_is_no_certificate_is_a_metadata_error(blob: bytes) -> None:
    with pytest.raises(MetadataError, match="root certificate"):
        parse_metadata(
            blob, b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
        )
    with pytest.raises(MetadataError, match="root certificate"):
        parse_metadata(blob, b"\x30\x03\x02\x01\x01")


def _signed(payload: bytes, signer: MdsSigner) -> bytes:
    """A correctly signed JWS over any payload bytes, to reach the JSON checks."""
    header = {
        "alg": "RS256",
        "typ": "JWT",
        "x5c": [base64.b64encode(signer.leaf.public_bytes(Encoding.DER)).decode()],
    }
    message = f"{b64u(json.dumps(header).encode())}.{b64u(payload)}".encode()
    signature = signer.leaf_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return message + b"." + b64u(signature).encode()


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        json.dumps({"no": 1}).encode(),
        json.dumps({"legalHeader": "", "no": 1, "nextUpdate": "tomorrow", "entries": []}).encode(),
        json.dumps(
            {"legalHeader": "", "no": 1, "nextUpdate": "2030-01-01", "entries": [{"aaguid": 5}]}
        ).encode(),
    ],
)
def test_a_signed_blob_whose_json_is_not_mds3_is_a_metadata_error(
    payload: bytes,
    signer: MdsSigner,
) -> None:
    with pytest.raises(MetadataError, match="malformed"):
        parse_metadata(_signed(payload, signer), signer.root_der)


@pytest.mark.parametrize("blob", [b"", b"abc", b"a.b", b"a.b.c", b"....", b"\xff.\xfe.\xfd"])
def test_a_file_that_is_no_jws_is_a_metadata_error(blob: bytes, signer: MdsSigner) -> None:
    with pytest.raises(MetadataError):
        parse_metadata(blob, signer.root_der)


def test_empty_metadata_has_serial_zero_and_knows_no_authenticator() -> None:
    metadata = EmptyMetadata()
    assert metadata.serial == 0
    assert metadata.lookup(KEY) is None


def test_an_mds_entry_without_a_metadata_statement_is_known_with_its_status(
    signer: MdsSigner,
) -> None:
    entry = {
        "aaguid": KEY,
        "statusReports": [{"status": "REVOKED", "effectiveDate": "2024-01-01"}],
        "timeOfLastStatusChange": "2024-01-01",
    }
    info = parse_metadata(make_mds_blob([entry], serial=2, signer=signer), signer.root_der).lookup(
        KEY
    )
    assert info is not None
    assert (info.description, info.root_certificates, info.compromised) == ("", (), True)
