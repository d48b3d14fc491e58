"""WebAuthn Level 3 ceremonies on py_webauthn, extended with cryptography where it falls short.

py_webauthn builds the options and parses the attestation object, the authenticator data, COSE
keys and TPM structures; this module runs the §7.1/§7.2 checks and the attestation formats
itself, so that ES384 and Ed448 keys, any TPM vendor, leaf-only android-key chains, fido-u2f
with a non-zero AAGUID and `topOrigin` all follow the spec, and so that attestation chains are
trusted only through the FIDO metadata of the credential's AAGUID (ADR 13).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from OpenSSL import crypto as openssl
from pyasn1.codec.der.decoder import decode as der_decode
from pyasn1.error import PyAsn1Error
from webauthn import generate_authentication_options, generate_registration_options
from webauthn.helpers import (
    aaguid_to_string,
    decode_credential_public_key,
    options_to_json,
    parse_authenticator_data,
    parse_cbor,
    verify_signature,
)
from webauthn.helpers.asn1.android_key import KeyDescription
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.decode_credential_public_key import (
    DecodedEC2PublicKey,
    DecodedOKPPublicKey,
    DecodedRSAPublicKey,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorAttachment,
    AuthenticatorData,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from webauthn.helpers.tpm import parse_cert_info, parse_pub_area
from webauthn.helpers.tpm.structs import (
    TPM_ALG,
    TPM_ECC_CURVE_COSE_CRV_MAP,
    TPMPubAreaParametersECC,
    TPMPubAreaParametersRSA,
)

from application.ports import (
    AuthenticatorMetadata,
    Clock,
    RegisteredCredential,
    RelyingParty,
    VerifiedAssertion,
    WebAuthnError,
)

# COSE algorithm identifiers (IANA COSE registry; -53 is the fully specified Ed448).
ES256, ES384, ES512, EDDSA, ED448, RS256 = -7, -35, -36, -8, -53, -257
OFFERED_ALGORITHMS = (ES256, EDDSA, ES384, ES512, RS256)
CREDENTIAL_ALGORITHMS = frozenset((*OFFERED_ALGORITHMS, ED448))
_EC_CURVES: dict[int, tuple[ec.EllipticCurve, int, int]] = {  # crv -> curve, alg, coordinate size
    1: (ec.SECP256R1(), ES256, 32),
    2: (ec.SECP384R1(), ES384, 48),
    3: (ec.SECP521R1(), ES512, 66),
}
# Hash of the TPM's extraData by the statement's alg (WebAuthn §8.3, TPM "extraData").
_STATEMENT_HASHES: dict[int, Callable[[bytes], Any]] = {
    -65535: hashlib.sha1,  # RS1: old TPMs still sign with it
    ES256: hashlib.sha256,
    -37: hashlib.sha256,
    RS256: hashlib.sha256,
    ES384: hashlib.sha384,
    -38: hashlib.sha384,
    -258: hashlib.sha384,
    ES512: hashlib.sha512,
    -39: hashlib.sha512,
    -259: hashlib.sha512,
}
_TPM_NAME_HASHES: dict[TPM_ALG, Callable[[bytes], Any]] = {
    TPM_ALG.SHA1: hashlib.sha1,
    TPM_ALG.SHA256: hashlib.sha256,
    TPM_ALG.SHA384: hashlib.sha384,
    TPM_ALG.SHA512: hashlib.sha512,
}
_TRANSPORTS = frozenset(t.value for t in AuthenticatorTransport)
_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")

OID_FIDO_AAGUID = x509.ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")
OID_ANDROID_KEY_DESCRIPTION = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.1.17")
OID_APPLE_NONCE = x509.ObjectIdentifier("1.2.840.113635.100.8.2")
OID_TCG_KP_AIK_CERTIFICATE = x509.ObjectIdentifier("2.23.133.8.3")
OID_TCG_AT_TPM_MANUFACTURER = x509.ObjectIdentifier("2.23.133.2.1")
OID_TCG_AT_TPM_MODEL = x509.ObjectIdentifier("2.23.133.2.2")
OID_TCG_AT_TPM_VERSION = x509.ObjectIdentifier("2.23.133.2.3")
TPM_GENERATED_VALUE = 0xFF544347
KM_ORIGIN_GENERATED = 0
KM_PURPOSE_SIGN = 2
SAFETYNET_MAX_AGE_MS = 5 * 60 * 1000
SAFETYNET_MAX_SKEW_MS = 60 * 1000

_BAD_CERTIFICATE = (
    ValueError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    x509.InvalidVersion,
)
# Anything a malformed credential can make the parsers raise; turned into WebAuthnError at
# the edge of every public method so that no other exception type ever leaves this adapter.
_MALFORMED = (
    WebAuthnException,
    ValueError,  # includes binascii.Error, UnicodeDecodeError, JSONDecodeError, CBOR errors
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    RecursionError,
    *_BAD_CERTIFICATE,
    PyAsn1Error,
    openssl.Error,
)

_PublicKey = (
    ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


# --- small, strict readers of the browser's JSON --------------------------------------------


def _b64url(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or not _B64URL.fullmatch(value):
        raise WebAuthnError(f"{name} is not a base64url string")
    bare = value.rstrip("=")
    try:
        return base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))
    except binascii.Error:
        raise WebAuthnError(f"{name} is not valid base64url") from None


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WebAuthnError(f"{name} must be a JSON object")
    return value


def _required(container: dict[str, Any], key: str, name: str) -> Any:
    if key not in container or container[key] is None:
        raise WebAuthnError(f"{name} is missing")
    return container[key]


@dataclass(frozen=True, slots=True)
class _ClientData:
    raw: bytes
    type: str
    challenge: bytes
    origin: str
    cross_origin: bool
    top_origin: str | None

    @classmethod
    def parse(cls, raw: bytes) -> _ClientData:
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise WebAuthnError("clientDataJSON is not UTF-8 JSON") from None
        data = _object(data, "clientDataJSON")
        kind = data.get("type")
        origin = data.get("origin")
        cross_origin = data.get("crossOrigin", False)
        top_origin = data.get("topOrigin")
        if not isinstance(kind, str):
            raise WebAuthnError("clientDataJSON.type is missing")
        if not isinstance(origin, str):
            raise WebAuthnError("clientDataJSON.origin is missing")
        if not isinstance(cross_origin, bool):
            raise WebAuthnError("clientDataJSON.crossOrigin must be a boolean")
        if top_origin is not None and not isinstance(top_origin, str):
            raise WebAuthnError("clientDataJSON.topOrigin must be a string")
        challenge = _b64url(data.get("challenge"), "clientDataJSON.challenge")
        return cls(raw, kind, challenge, origin, cross_origin, top_origin)

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(self.raw).digest()


# --- COSE keys and signatures ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CoseKey:
    """A credential public key: its COSE algorithm and the cryptography key it decodes to."""

    alg: int
    key: _PublicKey

    @classmethod
    def decode(cls, cose: bytes, name: str) -> _CoseKey:
        try:
            decoded = decode_credential_public_key(cose)
        except _MALFORMED:
            raise WebAuthnError(f"{name} is not a valid COSE key") from None
        alg = decoded.alg
        if alg not in CREDENTIAL_ALGORITHMS:
            raise WebAuthnError(f"{name} has unsupported algorithm {alg}")
        if isinstance(decoded, DecodedEC2PublicKey):
            return cls(alg, _ec_key(decoded, alg, name))
        if isinstance(decoded, DecodedOKPPublicKey):
            return cls(alg, _okp_key(decoded, alg, name))
        if isinstance(decoded, DecodedRSAPublicKey) and alg == RS256:
            if not isinstance(decoded.n, bytes) or not isinstance(decoded.e, bytes):
                raise WebAuthnError(f"{name} is not a valid RSA key")
            numbers = rsa.RSAPublicNumbers(
                int.from_bytes(decoded.e, "big"), int.from_bytes(decoded.n, "big")
            )
            return cls(alg, numbers.public_key())
        raise WebAuthnError(f"{name}: key type does not fit algorithm {alg}")

    def verify(self, signature: bytes, data: bytes) -> bool:
        return _verify(self.key, self.alg, signature, data)

    def spki(self) -> bytes:
        return self.key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _ec_key(decoded: DecodedEC2PublicKey, alg: int, name: str) -> ec.EllipticCurvePublicKey:
    curve, curve_alg, size = _EC_CURVES.get(decoded.crv, (None, None, 0))
    if curve is None or curve_alg != alg:
        raise WebAuthnError(f"{name}: curve {decoded.crv} does not fit algorithm {alg}")
    x, y = decoded.x, decoded.y
    if not isinstance(x, bytes) or not isinstance(y, bytes) or len(x) != size or len(y) != size:
        raise WebAuthnError(f"{name} has malformed EC coordinates")
    try:
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve
        )
        return numbers.public_key()
    except ValueError:
        raise WebAuthnError(f"{name} is not a point on its curve") from None


def _okp_key(decoded: DecodedOKPPublicKey, alg: int, name: str) -> _PublicKey:
    if not isinstance(decoded.x, bytes):
        raise WebAuthnError(f"{name} has a malformed OKP key")
    try:
        if decoded.crv == 6 and alg == EDDSA:
            return ed25519.Ed25519PublicKey.from_public_bytes(decoded.x)
        if decoded.crv == 7 and alg in (EDDSA, ED448):
            return ed448.Ed448PublicKey.from_public_bytes(decoded.x)
    except ValueError:
        raise WebAuthnError(f"{name} has a malformed OKP key") from None
    raise WebAuthnError(f"{name}: curve {decoded.crv} does not fit algorithm {alg}")


def _verify(key: CertificatePublicKeyTypes, alg: int, signature: bytes, data: bytes) -> bool:
    """py_webauthn's `verify_signature`, plus ES384 and Ed448 (which it does not know)."""
    if not isinstance(signature, bytes):
        raise WebAuthnError("the signature must be a byte string")
    try:
        if isinstance(key, ed448.Ed448PublicKey):
            key.verify(signature, data)
        elif isinstance(key, ec.EllipticCurvePublicKey) and alg == ES384:
            key.verify(signature, data, ec.ECDSA(hashes.SHA384()))
        else:
            verify_signature(
                public_key=key,
                signature_alg=COSEAlgorithmIdentifier(alg),
                signature=signature,
                data=data,
            )
    except InvalidSignature:
        return False
    except (WebAuthnException, ValueError):
        raise WebAuthnError(f"algorithm {alg} does not fit the signing key") from None
    return True


# --- certificates ---------------------------------------------------------------------------


def _certificates(statement: dict[str, Any], fmt: str) -> list[bytes]:
    x5c = statement.get("x5c")
    if not isinstance(x5c, list) or not x5c or not all(isinstance(c, bytes) for c in x5c):
        raise WebAuthnError(f"the {fmt} attestation needs a non-empty x5c")
    return x5c


def _certificate(der: bytes, fmt: str) -> x509.Certificate:
    try:
        cert = x509.load_der_x509_certificate(der)
        # cryptography parses these lazily: fail here, not halfway through a check.
        cert.public_key(), cert.extensions, cert.subject, cert.version
    except _BAD_CERTIFICATE:
        raise WebAuthnError(f"the {fmt} attestation certificate is malformed") from None
    return cert


def _check_leaf(cert: x509.Certificate, aaguid: bytes, fmt: str) -> None:
    """Requirements every attestation leaf shares (§8.2.1, §8.3.1): v3, CA=false, and an
    AAGUID extension, when present, that names the authenticator's AAGUID."""
    if cert.version != x509.Version.v3:
        raise WebAuthnError(f"the {fmt} attestation certificate is not X.509 version 3")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        raise WebAuthnError(f"the {fmt} attestation certificate has no basic constraints") from None
    if constraints.value.ca:
        raise WebAuthnError(f"the {fmt} attestation certificate is a CA certificate")
    try:
        extension = cert.extensions.get_extension_for_oid(OID_FIDO_AAGUID)
    except x509.ExtensionNotFound:
        return
    value = extension.value
    if extension.critical:
        raise WebAuthnError(f"the {fmt} certificate's AAGUID extension must not be critical")
    if not isinstance(value, x509.UnrecognizedExtension) or value.value != b"\x04\x10" + aaguid:
        raise WebAuthnError(f"the {fmt} certificate's AAGUID does not match authenticatorData")


def _same_key(cert: x509.Certificate, key: _CoseKey) -> bool:
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hmac.compare_digest(spki, key.spki())


# --- attestation statement formats (§8) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Attestation:
    type: str  # "none" | "self" | "basic" | "attca" | "anonca"
    chain: list[bytes]  # x5c, leaf first; empty when there is nothing to trust


@dataclass(frozen=True, slots=True)
class _Ceremony:
    auth_data: bytes
    client_data_hash: bytes
    rp_id_hash: bytes
    aaguid: bytes
    credential_id: bytes
    key: _CoseKey
    now: Callable[[], datetime] | None

    @property
    def signed(self) -> bytes:
        return self.auth_data + self.client_data_hash


def _alg(statement: dict[str, Any], fmt: str) -> int:
    alg = statement.get("alg")
    if not isinstance(alg, int) or isinstance(alg, bool):
        raise WebAuthnError(f"the {fmt} attestation has no alg")
    return alg


def _sig(statement: dict[str, Any], fmt: str) -> bytes:
    sig = statement.get("sig")
    if not isinstance(sig, bytes):
        raise WebAuthnError(f"the {fmt} attestation has no sig")
    return sig


def _none(statement: dict[str, Any], c: _Ceremony) -> _Attestation:
    if statement:
        raise WebAuthnError("a none attestation must have an empty attStmt")
    return _Attestation("none", [])


def _packed(statement: dict[str, Any], c: _Ceremony) -> _Attestation:
    alg, sig = _alg(statement, "packed"), _sig(statement, "packed")
    if "x5c" not in statement:
        if alg != c.key.alg:
            raise WebAuthnError(f"self attestation alg {alg} differs from the key's {c.key.alg}")
        if not c.key.verify(sig, c.signed):
            raise WebAuthnError("the packed self-attestation signature does not verify")
        return _Attestation("self", [])
    chain = _certificates(statement, "packed")
    cert = _certificate(chain[0], "packed")
    _check_leaf(cert, c.aaguid, "packed")
    subject = cert.subject
    for oid, label in (
        (x509.NameOID.COUNTRY_NAME, "C"),
        (x509.NameOID.ORGANIZATION_NAME, "O"),
        (x509.NameOID.COMMON_NAME, "CN"),
    ):
        if not subject.get_attributes_for_oid(oid):
            raise WebAuthnError(f"the packed attestation certificate's subject has no {label}")
    units = [a.value for a in subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)]
    if units != ["Authenticator Attestation"]:
        raise WebAuthnError('the packed certificate\'s OU is not "Authenticator Attestation"')
    if not _verify(cert.public_key(), alg, sig, c.signed):
        raise WebAuthnError("the packed attestation signature does not verify")
    return _Attestation("basic", chain)


def _fido_u2f(statement: dict[str, Any], c: _Ceremony) -> _Attestation:
    sig = _sig(statement, "fido-u2f")
    chain = _certificates(statement, "fido-u2f")
    if len(chain) != 1:
        raise WebAuthnError("a fido-u2f attestation carries exactly one certificate")
    cert = _certificate(chain[0], "fido-u2f")
    cert_key = cert.public_key()
    if not isinstance(cert_key, ec.EllipticCurvePublicKey) or cert_key.curve.name != "secp256r1":
        raise WebAuthnError("the fido-u2f attestation key is not a P-256 key")
    if not isinstance(c.key.key, ec.EllipticCurvePublicKey) or c.key.alg != ES256:
        raise WebAuthnError("a fido-u2f credential must be an ES256 key")
    point = c.key.key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    # The AAGUID is deliberately not checked: §8.6 never constrains it (CTAP2 U2F bridges and
    # some keys send a real one).
    signed = b"\x00" + c.rp_id_hash + c.client_data_hash + c.credential_id + point
    if not _verify(cert_key, ES256, sig, signed):
        raise WebAuthnError("the fido-u2f attestation signature does not verify")
    return _Attestation("basic", chain)


def _tpm(statement: dict[str, Any], c: _Ceremony) -> _Attestation:
    if statement.get("ver") != "2.0":
        raise WebAuthnError('the tpm attestation version is not "2.0"')
    alg, sig = _alg(statement, "tpm"), _sig(statement, "tpm")
    cert_info_raw, pub_area_raw = statement.get("certInfo"), statement.get("pubArea")
    if not isinstance(cert_info_raw, bytes) or not isinstance(pub_area_raw, bytes):
        raise WebAuthnError("the tpm attestation needs certInfo and pubArea")
    chain = _certificates(statement, "tpm")
    pub_area = parse_pub_area(pub_area_raw)
    key = c.key.key
    if isinstance(pub_area.parameters, TPMPubAreaParametersRSA):
        exponent = int.from_bytes(pub_area.parameters.exponent, "big") or 65537
        numbers = key.public_numbers() if isinstance(key, rsa.RSAPublicKey) else None
        if (
            numbers is None
            or int.from_bytes(pub_area.unique.value, "big") != numbers.n
            or exponent != numbers.e
        ):
            raise WebAuthnError("the tpm pubArea does not hold the credential's RSA key")
    elif isinstance(pub_area.parameters, TPMPubAreaParametersECC):
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise WebAuthnError("the tpm pubArea holds an ECC key, the credential does not")
        point = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)[1:]
        crv = TPM_ECC_CURVE_COSE_CRV_MAP.get(pub_area.parameters.curve_id)
        if pub_area.unique.value != point or crv is None or _EC_CURVES[crv][1] != c.key.alg:
            raise WebAuthnError("the tpm pubArea does not hold the credential's EC key")
    else:
        raise WebAuthnError("the tpm pubArea holds an unsupported key type")
    cert_info = parse_cert_info(cert_info_raw)
    if int.from_bytes(cert_info.magic, "big") != TPM_GENERATED_VALUE:
        raise WebAuthnError("the tpm certInfo magic is not TPM_GENERATED_VALUE")
    digest = _STATEMENT_HASHES.get(alg)
    if digest is None or not hmac.compare_digest(cert_info.extra_data, digest(c.signed).digest()):
        raise WebAuthnError("the tpm certInfo extraData is not the hash of attToBeSigned")
    name_hash = _TPM_NAME_HASHES.get(pub_area.name_alg)
    expected_name = cert_info.attested.name_alg_bytes + (
        name_hash(pub_area_raw).digest() if name_hash else b""
    )
    if name_hash is None or cert_info.attested.name != expected_name:
        raise WebAuthnError("the tpm certInfo does not name the pubArea")
    cert = _certificate(chain[0], "tpm")
    if not _verify(cert.public_key(), alg, sig, cert_info_raw):
        raise WebAuthnError("the tpm attestation signature does not verify")
    _check_aik_certificate(cert, c.aaguid)
    return _Attestation("attca", chain)


def _check_aik_certificate(cert: x509.Certificate, aaguid: bytes) -> None:
    """§8.3.1. The manufacturer is checked for form only: the spec asks for no vendor list."""
    _check_leaf(cert, aaguid, "tpm")
    if len(cert.subject) != 0:
        raise WebAuthnError("the tpm AIK certificate's subject must be empty")
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise WebAuthnError("the tpm AIK certificate lacks its SAN or EKU extension") from None
    if OID_TCG_KP_AIK_CERTIFICATE not in usages:
        raise WebAuthnError("the tpm AIK certificate's EKU lacks tcg-kp-AIKCertificate")
    found: dict[x509.ObjectIdentifier, str] = {}
    for name in names.get_values_for_type(x509.DirectoryName):
        for attribute in name:
            value = attribute.value
            found[attribute.oid] = value if isinstance(value, str) else value.decode("latin-1")
    manufacturer = found.get(OID_TCG_AT_TPM_MANUFACTURER, "")
    if not re.fullmatch(r"id:[0-9A-Fa-f]{8}", manufacturer):
        raise WebAuthnError("the tpm AIK certificate names no TPM manufacturer")
    if OID_TCG_AT_TPM_MODEL not in found or OID_TCG_AT_TPM_VERSION not in found:
        raise WebAuthnError("the tpm AIK certificate names no TPM model or version")


def _android_key(statement: dict[str, Any], c: _Ceremony) -> _Attestation:
    alg, sig = _alg(statement, "android-key"), _sig(statement, "android-key")
    chain = _certificates(statement, "android-key")
    cert = _certificate(chain[0], "android-key")
    if not _verify(cert.public_key(), alg, sig, c.signed):
        raise WebAuthnError("the android-key attestation signature does not verify")
    if not _same_key(cert, c.key):
        raise WebAuthnError("the android-key certificate holds another key than the credential")
    try:
        extension = cert.extensions.get_extension_for_oid(OID_ANDROID_KEY_DESCRIPTION).value
    except x509.ExtensionNotFound:
        raise WebAuthnError("the android-key certificate has no key description") from None
    if not isinstance(extension, x509.UnrecognizedExtension):
        raise WebAuthnError("the android-key key description is malformed")
    description, rest = der_decode(extension.value, asn1Spec=KeyDescription())
    if rest:
        raise WebAuthnError("the android-key key description has trailing bytes")
    if not hmac.compare_digest(bytes(description["attestationChallenge"]), c.client_data_hash):
        raise WebAuthnError("the android-key attestationChallenge is not the clientDataHash")
    lists = (description["softwareEnforced"], description["teeEnforced"])
    if any(auth["allApplications"].hasValue() for auth in lists):
        raise WebAuthnError("the android-key credential is not scoped to one RP (allApplications)")
    # Over the union of both lists, as §8.4 allows for keys outside a TEE. A list that omits
    # origin or purpose (the Level 3 test vector's lists are empty) has nothing to contradict.
    for auth in lists:
        if auth["origin"].hasValue() and int(auth["origin"]) != KM_ORIGIN_GENERATED:
            raise WebAuthnError("the android-key key was not generated in the keystore")
        if auth["purpose"].hasValue() and {int(p) for p in auth["purpose"]} != {KM_PURPOSE_SIGN}:
            raise WebAuthnError("the android-key key's purpose is not KM_PURPOSE_SIGN")
    return _Attestation("basic", chain)


def _android_safetynet(statement: dict[str, Any], c: _Ceremony) -> _Attestation:
    ver, response = statement.get("ver"), statement.get("response")
    if not isinstance(ver, str) or not ver or not isinstance(response, bytes):
        raise WebAuthnError("the android-safetynet attestation needs ver and response")
    parts = response.decode("ascii").split(".")
    if len(parts) != 3:
        raise WebAuthnError("the android-safetynet response is not a compact JWS")
    header = _object(json.loads(_b64url(parts[0], "the JWS header")), "the JWS header")
    payload = _object(json.loads(_b64url(parts[1], "the JWS payload")), "the JWS payload")
    expected_nonce = base64.b64encode(hashlib.sha256(c.signed).digest()).decode("ascii")
    if payload.get("nonce") != expected_nonce:
        raise WebAuthnError("the android-safetynet nonce does not match")
    if payload.get("ctsProfileMatch") is not True:
        raise WebAuthnError("the android-safetynet ctsProfileMatch is not true")
    issued = payload.get("timestampMs")
    now_ms = int((c.now().timestamp() if c.now else time.time()) * 1000)
    if not isinstance(issued, int) or not (
        now_ms - SAFETYNET_MAX_AGE_MS <= issued <= now_ms + SAFETYNET_MAX_SKEW_MS
    ):
        raise WebAuthnError("the android-safetynet response is stale or from the future")
    x5c = header.get("x5c")
    if header.get("alg") != "RS256" or not isinstance(x5c, list) or not x5c:
        raise WebAuthnError("the android-safetynet JWS must be RS256 with an x5c chain")
    chain = [base64.b64decode(str(entry), validate=True) for entry in x5c]
    cert = _certificate(chain[0], "android-safetynet")
    names = [a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    if names != ["attest.android.com"]:
        raise WebAuthnError("the android-safetynet certificate is not for attest.android.com")
    signed = f"{parts[0]}.{parts[1]}".encode("ascii")
    if not _verify(cert.public_key(), RS256, _b64url(parts[2], "the JWS signature"), signed):
        raise WebAuthnError("the android-safetynet JWS signature does not verify")
    return _Attestation("basic", chain)


def _apple(statement: dict[str, Any], c: _Ceremony) -> _Attestation:
    chain = _certificates(statement, "apple")
    cert = _certificate(chain[0], "apple")
    nonce = hashlib.sha256(c.signed).digest()
    try:
        extension = cert.extensions.get_extension_for_oid(OID_APPLE_NONCE).value
    except x509.ExtensionNotFound:
        raise WebAuthnError("the apple certificate has no nonce extension") from None
    # DER of SEQUENCE { [1] EXPLICIT OCTET STRING (32 bytes) }: a single valid encoding.
    expected = b"\x30\x24\xa1\x22\x04\x20" + nonce
    if not isinstance(extension, x509.UnrecognizedExtension) or not hmac.compare_digest(
        extension.value, expected
    ):
        raise WebAuthnError("the apple certificate's nonce does not match")
    if not _same_key(cert, c.key):
        raise WebAuthnError("the apple certificate holds another key than the credential")
    return _Attestation("anonca", chain)


_FORMATS: dict[str, Callable[[dict[str, Any], _Ceremony], _Attestation]] = {
    "none": _none,
    "packed": _packed,
    "fido-u2f": _fido_u2f,
    "tpm": _tpm,
    "android-key": _android_key,
    "android-safetynet": _android_safetynet,
    "apple": _apple,
}


# --- the adapter ----------------------------------------------------------------------------


_Enum = TypeVar("_Enum", bound=Enum)


def _enum(kind: type[_Enum], value: str, name: str) -> _Enum:
    try:
        return kind(value)
    except ValueError:
        raise WebAuthnError(f"{name} {value!r} is not a WebAuthn value") from None


class PyWebAuthnCeremonies:
    """`WebAuthnCeremonies` on py_webauthn 3.0 and cryptography.

    Sign counters are returned, never judged; BE/BS flags are read, never enforced. A chain is
    trusted only through `metadata.lookup(aaguid).root_certificates` (OpenSSL, with partial
    chains allowed because MDS3 anchors may be intermediates or the leaf itself).

    `accept_cross_origin_without_top_origin` is for Level 2 browsers, which send
    `crossOrigin: true` without `topOrigin`: when set, such a ceremony is accepted for a relying
    party that lists any `top_origins` at all. Off, such a ceremony is always refused.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        accept_cross_origin_without_top_origin: bool = False,
    ) -> None:
        self._clock = clock
        self._legacy_cross_origin = accept_cross_origin_without_top_origin

    # options

    def creation_options(
        self,
        *,
        rp: RelyingParty,
        user_handle: bytes,
        user_name: str,
        display_name: str,
        challenge: bytes,
        exclude: list[bytes],
        attachment: str | None,
        resident_key: str,
        user_verification: str,
        attestation: str,
        timeout_ms: int,
    ) -> dict[str, Any]:
        if not 1 <= len(user_handle) <= 64:
            raise WebAuthnError("the user handle must be 1 to 64 bytes")
        if len(challenge) < 16:
            raise WebAuthnError("the challenge must be at least 16 bytes")
        if not user_name or not rp.rp_id or not rp.name:
            raise WebAuthnError("rp id, rp name and user name must not be empty")
        residency = _enum(ResidentKeyRequirement, resident_key, "residentKey")
        selection = AuthenticatorSelectionCriteria(
            authenticator_attachment=(
                None
                if attachment is None
                else _enum(AuthenticatorAttachment, attachment, "authenticatorAttachment")
            ),
            resident_key=residency,
            require_resident_key=residency is ResidentKeyRequirement.REQUIRED,
            user_verification=_enum(
                UserVerificationRequirement, user_verification, "userVerification"
            ),
        )
        conveyance = _enum(AttestationConveyancePreference, attestation, "attestation")
        try:
            options = generate_registration_options(
                rp_id=rp.rp_id,
                rp_name=rp.name,
                user_name=user_name,
                user_id=user_handle,
                user_display_name=display_name,
                challenge=challenge,
                timeout=timeout_ms,
                attestation=conveyance,
                authenticator_selection=selection,
                exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in exclude],
            )
            result: dict[str, Any] = json.loads(options_to_json(options))
        except _MALFORMED as error:
            raise WebAuthnError(f"the creation options are invalid ({_reason(error)})") from None
        # py_webauthn's algorithm enum has no ES384, so the list is written here.
        result["pubKeyCredParams"] = [
            {"type": "public-key", "alg": alg} for alg in OFFERED_ALGORITHMS
        ]
        return result

    def request_options(
        self,
        *,
        rp: RelyingParty,
        challenge: bytes,
        allow: list[tuple[bytes, tuple[str, ...]]],
        user_verification: str,
        timeout_ms: int,
    ) -> dict[str, Any]:
        if len(challenge) < 16:
            raise WebAuthnError("the challenge must be at least 16 bytes")
        if not rp.rp_id:
            raise WebAuthnError("the rp id must not be empty")
        descriptors = [
            PublicKeyCredentialDescriptor(
                id=credential_id,
                transports=[AuthenticatorTransport(t) for t in transports if t in _TRANSPORTS],
            )
            for credential_id, transports in allow
        ]
        requirement = _enum(UserVerificationRequirement, user_verification, "userVerification")
        try:
            options = generate_authentication_options(
                rp_id=rp.rp_id,
                challenge=challenge,
                timeout=timeout_ms,
                allow_credentials=descriptors,
                user_verification=requirement,
            )
            result: dict[str, Any] = json.loads(options_to_json(options))
        except _MALFORMED as error:
            raise WebAuthnError(f"the request options are invalid ({_reason(error)})") from None
        return result

    # ceremonies

    def credential_id(self, credential: dict[str, Any]) -> bytes:
        credential = _object(credential, "the credential")
        raw_id, ident = credential.get("rawId"), credential.get("id")
        if raw_id is None and ident is None:
            raise WebAuthnError("the credential has neither rawId nor id")
        decoded = _b64url(raw_id, "rawId") if raw_id is not None else _b64url(ident, "id")
        if raw_id is not None and ident is not None and _b64url(ident, "id") != decoded:
            raise WebAuthnError("id and rawId name different credentials")
        if not decoded:
            raise WebAuthnError("the credential id is empty")
        return decoded

    def verify_registration(
        self,
        credential: dict[str, Any],
        *,
        rp: RelyingParty,
        challenge: bytes,
        require_user_verification: bool,
        metadata: AuthenticatorMetadata,
    ) -> RegisteredCredential:
        try:
            return self._verify_registration(
                credential,
                rp=rp,
                challenge=challenge,
                require_user_verification=require_user_verification,
                metadata=metadata,
            )
        except _MALFORMED as error:
            raise WebAuthnError(
                f"the registration response is malformed ({_reason(error)})"
            ) from None

    def verify_authentication(
        self,
        credential: dict[str, Any],
        *,
        rp: RelyingParty,
        challenge: bytes,
        public_key: bytes,
        require_user_verification: bool,
    ) -> VerifiedAssertion:
        try:
            return self._verify_authentication(
                credential,
                rp=rp,
                challenge=challenge,
                public_key=public_key,
                require_user_verification=require_user_verification,
            )
        except _MALFORMED as error:
            raise WebAuthnError(f"the assertion is malformed ({_reason(error)})") from None

    def _verify_registration(
        self,
        credential: dict[str, Any],
        *,
        rp: RelyingParty,
        challenge: bytes,
        require_user_verification: bool,
        metadata: AuthenticatorMetadata,
    ) -> RegisteredCredential:
        raw_id, response, client = self._common(credential, "webauthn.create", rp, challenge)
        transports = response.get("transports", [])
        if not isinstance(transports, list) or not all(isinstance(t, str) for t in transports):
            raise WebAuthnError("response.transports must be a list of strings")
        raw_object = _b64url(
            _required(response, "attestationObject", "response.attestationObject"),
            "response.attestationObject",
        )
        try:
            attestation_object = parse_cbor(raw_object)
        except WebAuthnException:
            raise WebAuthnError("attestationObject is not valid CBOR") from None
        if not isinstance(attestation_object, dict):
            raise WebAuthnError("attestationObject is not a CBOR map")
        fmt, statement = attestation_object.get("fmt"), attestation_object.get("attStmt")
        raw_auth_data = attestation_object.get("authData")
        if not isinstance(fmt, str) or not isinstance(statement, dict):
            raise WebAuthnError("attestationObject needs fmt and attStmt")
        if not isinstance(raw_auth_data, bytes):
            raise WebAuthnError("attestationObject has no authData")
        auth_data = _authenticator_data(raw_auth_data)
        _check_flags(auth_data, rp, require_user_verification)
        attested = auth_data.attested_credential_data
        if attested is None:
            raise WebAuthnError("authenticatorData has no attested credential data (AT flag)")
        if not hmac.compare_digest(attested.credential_id, raw_id):
            raise WebAuthnError("the credential id in authenticatorData differs from rawId")
        if len(raw_id) > 1023:
            raise WebAuthnError("the credential id is longer than 1023 bytes")
        key = _CoseKey.decode(attested.credential_public_key, "the credential public key")
        verify_format = _FORMATS.get(fmt)
        if verify_format is None:
            raise WebAuthnError(f"attestation format {fmt!r} is not supported")
        ceremony = _Ceremony(
            auth_data=raw_auth_data,
            client_data_hash=client.hash,
            rp_id_hash=auth_data.rp_id_hash,
            aaguid=attested.aaguid,
            credential_id=attested.credential_id,
            key=key,
            now=self._clock.now if self._clock else None,
        )
        statement_result = verify_format(statement, ceremony)
        aaguid = aaguid_to_string(attested.aaguid)
        return RegisteredCredential(
            credential_id=attested.credential_id,
            public_key=attested.credential_public_key,
            algorithm=key.alg,
            sign_count=auth_data.sign_count,
            aaguid=aaguid,
            fmt=fmt,
            attestation_type=statement_result.type,
            attested=self._trusted(statement_result.chain, aaguid, metadata),
            user_present=auth_data.flags.up,
            user_verified=auth_data.flags.uv,
            backup_eligible=auth_data.flags.be,
            backed_up=auth_data.flags.bs,
            transports=tuple(dict.fromkeys(t for t in transports if t in _TRANSPORTS)),
        )

    def _verify_authentication(
        self,
        credential: dict[str, Any],
        *,
        rp: RelyingParty,
        challenge: bytes,
        public_key: bytes,
        require_user_verification: bool,
    ) -> VerifiedAssertion:
        raw_id, response, client = self._common(credential, "webauthn.get", rp, challenge)
        raw_auth_data = _b64url(
            _required(response, "authenticatorData", "response.authenticatorData"),
            "response.authenticatorData",
        )
        signature = _b64url(
            _required(response, "signature", "response.signature"), "response.signature"
        )
        handle = response.get("userHandle")
        user_handle = _b64url(handle, "response.userHandle") if handle else None
        auth_data = _authenticator_data(raw_auth_data)
        _check_flags(auth_data, rp, require_user_verification)
        key = _CoseKey.decode(public_key, "the stored public key")
        if not key.verify(signature, raw_auth_data + client.hash):
            raise WebAuthnError("the signature does not verify")
        return VerifiedAssertion(
            credential_id=raw_id,
            sign_count=auth_data.sign_count,
            user_verified=auth_data.flags.uv,
            backup_eligible=auth_data.flags.be,
            backed_up=auth_data.flags.bs,
            user_handle=user_handle or None,
        )

    def _common(
        self, credential: dict[str, Any], kind: str, rp: RelyingParty, challenge: bytes
    ) -> tuple[bytes, dict[str, Any], _ClientData]:
        """The credential id, the response and its client data, checked (§7.1 steps 5-10)."""
        raw_id = self.credential_id(credential)
        if credential.get("type") != "public-key":
            raise WebAuthnError('the credential type must be "public-key"')
        response = _object(_required(credential, "response", "response"), "response")
        client = _ClientData.parse(
            _b64url(
                _required(response, "clientDataJSON", "response.clientDataJSON"),
                "response.clientDataJSON",
            )
        )
        if client.type != kind:
            raise WebAuthnError(f"clientDataJSON.type is {client.type!r}, expected {kind!r}")
        if not hmac.compare_digest(client.challenge, challenge):
            raise WebAuthnError("the challenge does not match")
        if client.origin not in rp.origins:
            raise WebAuthnError(f"origin {client.origin} is not allowed")
        if client.top_origin is not None:
            if client.top_origin not in rp.top_origins:
                raise WebAuthnError(f"top origin {client.top_origin} is not allowed")
        elif client.cross_origin and not (self._legacy_cross_origin and rp.top_origins):
            raise WebAuthnError("a cross-origin ceremony without a topOrigin is not allowed")
        return raw_id, response, client

    def _trusted(self, chain: list[bytes], aaguid: str, metadata: AuthenticatorMetadata) -> bool:
        if not chain:
            return False
        info = metadata.lookup(aaguid)
        if info is None or not info.root_certificates:
            return False
        store = openssl.X509Store()
        try:
            for anchor in info.root_certificates:
                store.add_cert(
                    openssl.X509.from_cryptography(x509.load_der_x509_certificate(anchor))
                )
        except (ValueError, openssl.Error):
            raise WebAuthnError(f"the metadata roots of {aaguid} cannot be read") from None
        store.set_flags(openssl.X509StoreFlags.PARTIAL_CHAIN)
        if self._clock is not None:
            store.set_time(self._clock.now())
        leaf, *intermediates = (
            openssl.X509.from_cryptography(x509.load_der_x509_certificate(der)) for der in chain
        )
        try:
            openssl.X509StoreContext(store, leaf, intermediates).verify_certificate()
        except openssl.X509StoreContextError as error:
            raise WebAuthnError(
                f"the attestation chain does not verify against the metadata roots of "
                f"{aaguid} ({error})"
            ) from None
        return True


def _authenticator_data(raw: bytes) -> AuthenticatorData:
    try:
        return parse_authenticator_data(raw)
    except _MALFORMED as error:
        raise WebAuthnError(f"authenticatorData is malformed ({_reason(error)})") from None


def _check_flags(auth_data: AuthenticatorData, rp: RelyingParty, require_uv: bool) -> None:
    expected = hashlib.sha256(rp.rp_id.encode("utf-8")).digest()
    if not hmac.compare_digest(auth_data.rp_id_hash, expected):
        raise WebAuthnError(f"the rpIdHash does not match {rp.rp_id}")
    if not auth_data.flags.up:
        raise WebAuthnError("user presence is required but the UP flag is not set")
    if require_uv and not auth_data.flags.uv:
        raise WebAuthnError("user verification was required but the UV flag is not set")
    if auth_data.flags.bs and not auth_data.flags.be:
        raise WebAuthnError("the BS flag is set without the BE flag")


def _reason(error: BaseException) -> str:
    text = str(error).split(". See __cause__")[0]
    return text if text and len(text) < 200 else type(error).__name__
