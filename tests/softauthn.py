"""A software WebAuthn authenticator and test PKI (attestation CA, MDS3 BLOB) for tests.

Built from fido2 2.x structures and cryptography (LIBRARIES.md §3). Its output is the JSON a
browser's `PublicKeyCredential.toJSON()` gives, so ceremonies run end to end without one:

    authenticator = SoftAuthenticator("localhost", "http://localhost:8000")
    registration = authenticator.create(creation_options)      # RegistrationResponseJSON
    registered = ceremonies.verify_registration(registration, rp=rp, challenge=..., ...)
    assertion = authenticator.get(request_options)             # AuthenticationResponseJSON
    ceremonies.verify_authentication(assertion, rp=rp, public_key=registered.public_key, ...)

Every `get` adds one to the credential's sign counter; `get(..., counter=n)` sends n instead
(and continues from it), which is how a cloned key's counter regression is simulated.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509.oid import NameOID
from fido2 import cose
from fido2.utils import websafe_decode, websafe_encode
from fido2.webauthn import (
    AttestationObject,
    AttestedCredentialData,
    AuthenticatorData,
    CollectedClientData,
)
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from application.ports import AuthenticatorInfo

FLAG = AuthenticatorData.FLAG
AAGUID_OID = x509.ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")
_STORED = object()  # `get(user_handle=...)` default: the handle stored at creation

# name -> (fido2 COSE class, private key generator)
_ALGORITHMS: dict[str, Any] = {
    "ES256": (cose.ES256, lambda: ec.generate_private_key(ec.SECP256R1())),
    "ES384": (cose.ES384, lambda: ec.generate_private_key(ec.SECP384R1())),
    "ES512": (cose.ES512, lambda: ec.generate_private_key(ec.SECP521R1())),
    "EdDSA": (cose.EdDSA, ed25519.Ed25519PrivateKey.generate),
    "Ed448": (cose.Ed448, ed448.Ed448PrivateKey.generate),
    "RS256": (cose.RS256, lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
}
_EC_HASHES = {"ES256": hashes.SHA256, "ES384": hashes.SHA384, "ES512": hashes.SHA512}


def b64u(data: bytes) -> str:
    """Base64url without padding, as browsers encode binary members."""
    return str(websafe_encode(data))


def unb64u(text: str) -> bytes:
    return bytes(websafe_decode(text))


def sign(key: Any, algorithm: str, data: bytes) -> bytes:
    """Sign as a WebAuthn authenticator does for `algorithm` (DER ECDSA, PKCS#1 v1.5, EdDSA)."""
    if algorithm in _EC_HASHES:
        return bytes(key.sign(data, ec.ECDSA(_EC_HASHES[algorithm]())))
    if algorithm == "RS256":
        return bytes(key.sign(data, padding.PKCS1v15(), hashes.SHA256()))
    return bytes(key.sign(data))


class SoftAuthenticatorError(Exception):
    """What a browser would report as InvalidStateError or NotAllowedError."""


@dataclass
class SoftCredential:
    credential_id: bytes
    rp_id: str
    key: Any
    algorithm: str
    user_handle: bytes | None  # kept for resident (discoverable) credentials only
    counter: int = 0


# --- attestation PKI ----------------------------------------------------------------------------


def _name(common_name: str, unit: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "AA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tessera Tests"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return builder.not_valid_before(now - dt.timedelta(days=1)).not_valid_after(
        now + dt.timedelta(days=3650)
    )


@dataclass(frozen=True)
class AttestationCA:
    """A self-signed P-256 root that issues authenticator attestation certificates."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(Encoding.DER)

    def issue(
        self,
        aaguid: bytes | None,
        *,
        unit: str = "Authenticator Attestation",
        common_name: str = "Soft Authenticator",
        ca: bool = False,
        not_after: dt.datetime | None = None,
        key: Any = None,
    ) -> tuple[Any, bytes]:
        """A leaf key (P-256 unless `key` is given) and its DER certificate (§8.2.1): OU
        "Authenticator Attestation", CA=false and, unless `aaguid` is None, the
        id-fido-gen-ce-aaguid extension."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        builder = _validity(
            x509.CertificateBuilder()
            .subject_name(_name(common_name, unit))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
        ).add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        if not_after is not None:
            builder = builder.not_valid_before(not_after - dt.timedelta(days=30)).not_valid_after(
                not_after
            )
        if aaguid is not None:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(AAGUID_OID, b"\x04\x10" + aaguid), critical=False
            )
        return key, builder.sign(self.key, hashes.SHA256()).public_bytes(Encoding.DER)


def make_attestation_ca(common_name: str = "Tessera Test Attestation Root") -> AttestationCA:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name, "Authenticator Attestation CA")
    certificate = (
        _validity(
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return AttestationCA(key, certificate)


# --- the authenticator --------------------------------------------------------------------------


@dataclass
class SoftAuthenticator:
    """A platform authenticator in memory, bound to one RP id and origin by default.

    `attestation` is "none", "packed-self" or "packed-x5c" (the last needs `ca`, and signs with
    a leaf `ca.issue(aaguid)`); `algorithm` is "ES256", "ES384", "ES512", "EdDSA", "Ed448" or
    "RS256". `uv`, `backup_eligible` and `backed_up` set the UV, BE and BS flags.
    """

    rp_id: str
    origin: str
    uv: bool = True
    backup_eligible: bool = False
    backed_up: bool = False
    attestation: str = "none"
    aaguid: bytes = bytes(16)
    ca: AttestationCA | None = None
    algorithm: str = "ES256"
    transports: tuple[str, ...] = ("internal",)
    attachment: str = "platform"
    credentials: dict[bytes, SoftCredential] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.algorithm not in _ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algorithm}")
        if self.attestation not in ("none", "packed-self", "packed-x5c"):
            raise ValueError(f"unknown attestation {self.attestation}")
        if self.attestation == "packed-x5c" and self.ca is None:
            raise ValueError("packed-x5c attestation needs a ca")

    def _flags(self, *, uv: bool) -> AuthenticatorData.FLAG:
        flags = FLAG.UP
        if uv:
            flags |= FLAG.UV
        if self.backup_eligible:
            flags |= FLAG.BE
        if self.backed_up:
            flags |= FLAG.BS
        return flags

    def _client_data(
        self, kind: str, challenge: str, origin: str | None, extra: Mapping[str, Any] | None
    ) -> bytes:
        extra = dict(extra or {})
        cross_origin = bool(extra.pop("crossOrigin", False))
        return bytes(
            CollectedClientData.create(
                type=kind,
                challenge=challenge,
                origin=origin or self.origin,
                cross_origin=cross_origin,
                **extra,
            )
        )

    def create(
        self,
        options: Mapping[str, Any],
        *,
        origin: str | None = None,
        resident: bool = True,
        flags_override: int | None = None,
        client_extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """`navigator.credentials.create()` for `options` (PublicKeyCredentialCreationOptionsJSON),
        returning RegistrationResponseJSON. `client_extra` adds clientData members (e.g.
        `{"crossOrigin": True, "topOrigin": ...}`); `flags_override` replaces the flags byte."""
        rp_id = options.get("rp", {}).get("id") or self.rp_id
        for excluded in options.get("excludeCredentials", []):
            known = self.credentials.get(unb64u(excluded["id"]))
            if known is not None and known.rp_id == rp_id:
                raise SoftAuthenticatorError("InvalidStateError: credential already registered")
        cose_class, generate = _ALGORITHMS[self.algorithm]
        key = generate()
        credential_id = os.urandom(32)
        client_data = self._client_data(
            "webauthn.create", options["challenge"], origin, client_extra
        )
        flags = self._flags(uv=self.uv) | FLAG.AT
        auth_data = AuthenticatorData.create(
            hashlib.sha256(rp_id.encode()).digest(),
            FLAG(flags_override) if flags_override is not None else flags,
            0,
            AttestedCredentialData.create(
                self.aaguid, credential_id, cose_class.from_cryptography_key(key.public_key())
            ),
        )
        signed = bytes(auth_data) + hashlib.sha256(client_data).digest()
        if self.attestation == "none":
            fmt, statement = "none", {}
        elif self.attestation == "packed-self":
            fmt = "packed"
            statement = {"alg": cose_class.ALGORITHM, "sig": sign(key, self.algorithm, signed)}
        else:
            assert self.ca is not None
            leaf_key, leaf = self.ca.issue(self.aaguid)
            fmt = "packed"
            statement = {"alg": -7, "sig": sign(leaf_key, "ES256", signed), "x5c": [leaf]}
        attestation_object = AttestationObject.create(fmt, auth_data, statement)
        self.credentials[credential_id] = SoftCredential(
            credential_id=credential_id,
            rp_id=rp_id,
            key=key,
            algorithm=self.algorithm,
            user_handle=unb64u(options["user"]["id"]) if resident else None,
        )
        response: dict[str, Any] = {
            "clientDataJSON": b64u(client_data),
            "attestationObject": b64u(bytes(attestation_object)),
            "authenticatorData": b64u(bytes(auth_data)),
            "transports": list(self.transports),
            "publicKeyAlgorithm": cose_class.ALGORITHM,
        }
        if self.algorithm != "Ed448":  # browsers omit keys they cannot express in SPKI
            response["publicKey"] = b64u(
                key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            )
        return {
            "id": b64u(credential_id),
            "rawId": b64u(credential_id),
            "type": "public-key",
            "authenticatorAttachment": self.attachment,
            "clientExtensionResults": {"credProps": {"rk": resident}},
            "response": response,
        }

    def _pick(
        self, options: Mapping[str, Any], rp_id: str, credential_id: bytes | None
    ) -> SoftCredential:
        if credential_id is not None:
            return self.credentials[credential_id]
        allowed = [unb64u(c["id"]) for c in options.get("allowCredentials", [])]
        for candidate in allowed:
            if candidate in self.credentials and self.credentials[candidate].rp_id == rp_id:
                return self.credentials[candidate]
        if not allowed:
            discoverable = [
                c
                for c in self.credentials.values()
                if c.rp_id == rp_id and c.user_handle is not None
            ]
            if discoverable:
                return discoverable[-1]
        raise SoftAuthenticatorError("NotAllowedError: no credential for these options")

    def get(
        self,
        options: Mapping[str, Any],
        *,
        origin: str | None = None,
        counter: int | None = None,
        uv: bool | None = None,
        user_handle: Any = _STORED,
        credential_id: bytes | None = None,
        flags_override: int | None = None,
        client_extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """`navigator.credentials.get()` for `options` (PublicKeyCredentialRequestOptionsJSON),
        returning AuthenticationResponseJSON. The sign counter goes up by one unless `counter`
        is given; `user_handle` defaults to the one stored (None for a non-resident key)."""
        rp_id = options.get("rpId") or self.rp_id
        credential = self._pick(options, rp_id, credential_id)
        credential.counter = credential.counter + 1 if counter is None else counter
        client_data = self._client_data("webauthn.get", options["challenge"], origin, client_extra)
        flags = self._flags(uv=self.uv if uv is None else uv)
        auth_data = bytes(
            AuthenticatorData.create(
                hashlib.sha256(rp_id.encode()).digest(),
                FLAG(flags_override) if flags_override is not None else flags,
                credential.counter,
            )
        )
        signature = sign(
            credential.key,
            credential.algorithm,
            auth_data + hashlib.sha256(client_data).digest(),
        )
        handle = credential.user_handle if user_handle is _STORED else user_handle
        return {
            "id": b64u(credential.credential_id),
            "rawId": b64u(credential.credential_id),
            "type": "public-key",
            "authenticatorAttachment": self.attachment,
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64u(client_data),
                "authenticatorData": b64u(auth_data),
                "signature": b64u(signature),
                "userHandle": b64u(handle) if handle is not None else None,
            },
        }


# --- FIDO Metadata Service BLOBs ----------------------------------------------------------------


@dataclass(frozen=True)
class MdsSigner:
    """An MDS root and the leaf that signs BLOBs (the JWT's x5c is [leaf])."""

    root_key: Any
    root: x509.Certificate
    leaf_key: Any
    leaf: x509.Certificate
    algorithm: str  # "ES256" | "RS256"

    @property
    def root_der(self) -> bytes:
        return self.root.public_bytes(Encoding.DER)

    @property
    def root_pem(self) -> bytes:
        return self.root.public_bytes(Encoding.PEM)


def make_mds_root(algorithm: str = "ES256") -> MdsSigner:
    """A self-signed MDS root and a BLOB-signing leaf under it, with ES256 or RS256 keys."""

    def new_key() -> Any:
        if algorithm == "RS256":
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return ec.generate_private_key(ec.SECP256R1())

    root_key, leaf_key = new_key(), new_key()
    root_name = _name("Tessera Test MDS Root", "Metadata")
    root = (
        _validity(
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        _validity(
            x509.CertificateBuilder()
            .subject_name(_name("Tessera Test MDS Signer", "Metadata"))
            .issuer_name(root_name)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    return MdsSigner(root_key, root, leaf_key, leaf, algorithm)


def mds_entry(
    aaguid: str,
    *,
    description: str = "Soft Authenticator",
    roots: Sequence[bytes] = (),
    statuses: Sequence[tuple[str, str]] = (("FIDO_CERTIFIED_L1", "2024-01-01"),),
    icon: str | None = None,
) -> dict[str, Any]:
    """One MDS3 `entries` member: a FIDO2 metadata statement with `roots` (DER) as its
    attestationRootCertificates and one status report per (status, effectiveDate)."""
    statement: dict[str, Any] = {
        "legalHeader": "Test data.",
        "aaguid": aaguid,
        "description": description,
        "authenticatorVersion": 1,
        "protocolFamily": "fido2",
        "schema": 3,
        "upv": [{"major": 1, "minor": 1}],
        "authenticationAlgorithms": ["secp256r1_ecdsa_sha256_raw"],
        "publicKeyAlgAndEncodings": ["cose"],
        "attestationTypes": ["basic_full"],
        "userVerificationDetails": [[{"userVerificationMethod": "presence_internal"}]],
        "keyProtection": ["hardware"],
        "matcherProtection": ["on_chip"],
        "attachmentHint": ["internal"],
        "tcDisplay": [],
        "attestationRootCertificates": [base64.b64encode(der).decode() for der in roots],
    }
    if icon is not None:
        statement["icon"] = icon
    return {
        "aaguid": aaguid,
        "metadataStatement": statement,
        "statusReports": [{"status": s, "effectiveDate": day} for s, day in statuses],
        "timeOfLastStatusChange": max(day for _, day in statuses) if statuses else "2024-01-01",
    }


def make_mds_blob(
    entries: Sequence[Mapping[str, Any]],
    *,
    serial: int,
    signer: MdsSigner,
    next_update: str = "2099-12-31",
) -> bytes:
    """A signed MDS3 BLOB: a compact JWS (JWT) with `x5c: [signer leaf]` over the payload."""
    payload = {
        "legalHeader": "Test data, not the FIDO Alliance's.",
        "no": serial,
        "nextUpdate": next_update,
        "entries": list(entries),
    }
    pem = signer.leaf_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    key = RSAKey.import_key(pem) if signer.algorithm == "RS256" else ECKey.import_key(pem)
    header = {
        "alg": signer.algorithm,
        "typ": "JWT",
        "x5c": [base64.b64encode(signer.leaf.public_bytes(Encoding.DER)).decode()],
    }
    token = jws.serialize_compact(header, json.dumps(payload).encode(), key)
    return token.encode("ascii")


# --- metadata double ------------------------------------------------------------------------------


@dataclass
class FakeMetadata:
    """An `AuthenticatorMetadata` that knows exactly the authenticators added to it."""

    serial: int = 1
    infos: dict[str, AuthenticatorInfo] = field(default_factory=dict)

    def add(
        self,
        aaguid: bytes | str,
        *,
        roots: Sequence[bytes] = (),
        status: str = "FIDO_CERTIFIED_L1",
        compromised: bool = False,
        description: str = "Soft Authenticator",
    ) -> AuthenticatorInfo:
        key = str(uuid.UUID(bytes=aaguid) if isinstance(aaguid, bytes) else uuid.UUID(aaguid))
        info = AuthenticatorInfo(
            aaguid=key,
            description=description,
            icon=None,
            certification=status if status.startswith("FIDO_CERTIFIED") else None,
            status=status,
            compromised=compromised,
            root_certificates=tuple(roots),
        )
        self.infos[key] = info
        return info

    def lookup(self, aaguid: str) -> AuthenticatorInfo | None:
        return self.infos.get(aaguid.lower())
