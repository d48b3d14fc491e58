"""FIDO Metadata Service (MDS3): a BLOB file verified with fido2 against a configured root."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from fido2.attestation.base import InvalidSignature as ChainDoesNotVerify
from fido2.mds3 import MetadataBlobPayload, MetadataBlobPayloadEntry, parse_blob
from fido2.utils import websafe_decode, websafe_encode

from application.ports import AuthenticatorInfo

COMPROMISED = frozenset(
    {
        "REVOKED",
        "USER_KEY_REMOTE_COMPROMISE",
        "USER_KEY_PHYSICAL_COMPROMISE",
        "ATTESTATION_KEY_COMPROMISE",
    }
)


class MetadataError(Exception):
    """The BLOB or its root cannot be read, or the BLOB's signature or chain does not verify."""


@dataclass(frozen=True, slots=True)
class EmptyMetadata:
    """No BLOB loaded: every AAGUID is unknown, so no attestation chain is ever trusted."""

    serial: int = 0

    def lookup(self, aaguid: str) -> AuthenticatorInfo | None:
        return None


@dataclass(frozen=True, slots=True)
class Mds3Metadata:
    """A verified BLOB's entries, indexed by AAGUID (lower-case UUID string)."""

    serial: int
    next_update: date
    entries: Mapping[str, AuthenticatorInfo] = field(repr=False)

    def lookup(self, aaguid: str) -> AuthenticatorInfo | None:
        try:
            key = str(uuid.UUID(aaguid))
        except (ValueError, TypeError, AttributeError):
            return None
        return self.entries.get(key)


def _certificate_der(data: bytes) -> bytes:
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)


def _latest_status(entry: MetadataBlobPayloadEntry, *, certification: bool) -> str | None:
    """The status of the latest report (by effective date, then position in the list)."""
    reports = [
        (report.effective_date or date.min, index, str(report.status.value))
        for index, report in enumerate(entry.status_reports)
    ]
    if certification:
        reports = [
            r for r in reports if r[2].startswith("FIDO_CERTIFIED") or r[2] == "NOT_FIDO_CERTIFIED"
        ]
    return max(reports)[2] if reports else None


def _info(entry: MetadataBlobPayloadEntry) -> AuthenticatorInfo:
    statement = entry.metadata_statement
    statuses = {str(report.status.value) for report in entry.status_reports}
    return AuthenticatorInfo(
        aaguid=str(entry.aaguid),
        description=statement.description if statement else "",
        icon=statement.icon if statement else None,
        certification=_latest_status(entry, certification=True),
        status=_latest_status(entry, certification=False) or "",
        compromised=bool(statuses & COMPROMISED),
        root_certificates=tuple(statement.attestation_root_certificates) if statement else (),
    )


_EC_SIGNATURE_SIZES = {"ES256": 32, "ES384": 48, "ES512": 66}


def _der_signature(blob: bytes) -> bytes:
    """fido2 checks a BLOB's ECDSA signature as DER, but a JWS carries it as r || s (RFC 7518
    §3.4): re-encode it so that ES256 BLOBs verify too. RS256 BLOBs (FIDO's) pass unchanged."""
    message, _, signature = blob.rpartition(b".")
    header = json.loads(websafe_decode(message.split(b".")[0]))
    alg = header.get("alg") if isinstance(header, dict) else None
    size = _EC_SIGNATURE_SIZES.get(alg) if isinstance(alg, str) else None
    if size is None:
        return blob
    raw = websafe_decode(signature)
    if len(raw) != 2 * size:
        raise InvalidSignature
    der = encode_dss_signature(int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big"))
    return message + b"." + websafe_encode(der).encode("ascii")


def parse_metadata(blob: bytes, root_certificate: bytes) -> Mds3Metadata:
    """Verify a BLOB (a JWT whose x5c chains to `root_certificate`, DER or PEM) and index it."""
    try:
        root = _certificate_der(root_certificate)
    except ValueError as error:
        raise MetadataError(f"the MDS root certificate cannot be read ({error})") from None
    blob = blob.strip()
    if blob.count(b".") != 2:
        raise MetadataError("the MDS BLOB is not a compact JWS (header.payload.signature)")
    try:
        payload: MetadataBlobPayload = parse_blob(_der_signature(blob), root)
    except (InvalidSignature, ChainDoesNotVerify):
        raise MetadataError(
            "the MDS BLOB's signature or certificate chain does not verify"
        ) from None
    except (
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        NotImplementedError,
    ) as error:
        # fido2 lets builtin errors through for a BLOB that is not a JWS of MDS3 JSON.
        reason = str(error)[:160]
        raise MetadataError(
            f"the MDS BLOB is malformed ({type(error).__name__}: {reason})"
        ) from None
    entries: dict[str, AuthenticatorInfo] = {}
    for entry in _with_aaguid(payload.entries):
        info = _info(entry)
        for der in info.root_certificates:
            try:
                x509.load_der_x509_certificate(der)
            except ValueError:
                raise MetadataError(
                    f"the MDS entry {info.aaguid} has an unreadable attestation root"
                ) from None
        entries[info.aaguid] = info
    return Mds3Metadata(serial=payload.no, next_update=payload.next_update, entries=entries)


def _with_aaguid(entries: Sequence[MetadataBlobPayloadEntry]) -> list[MetadataBlobPayloadEntry]:
    # UAF entries (aaid) and U2F ones (attestation key identifiers) have no AAGUID to look up.
    return [entry for entry in entries if entry.aaguid is not None]


def load_metadata(blob_path: str | Path, root_path: str | Path) -> Mds3Metadata:
    """Read and verify the BLOB file against the root certificate file (DER or PEM)."""
    try:
        blob = Path(blob_path).read_bytes()
        root = Path(root_path).read_bytes()
    except OSError as error:
        raise MetadataError(f"cannot read MDS files: {error.strerror}: {error.filename}") from None
    return parse_metadata(blob, root)
