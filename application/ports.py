"""Ports: what the use cases need from the outside world, as typing.Protocols."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class IdGenerator(Protocol):
    def new_id(self) -> UUID:
        """A new random identifier (enrolments, sessions, organisations, token ids)."""


class SecretGenerator(Protocol):
    """Randomness from a CSPRNG. Implementations must never log what they return."""

    def otp_secret(self, size: int) -> bytes:
        """`size` random bytes for a new OTP shared secret."""

    def api_key(self) -> str:
        """A new API key with at least 256 bits of entropy."""

    def token(self) -> str:
        """A URL-safe random token with 256 bits of entropy (links, sessions, CSRF)."""

    def challenge(self) -> bytes:
        """32 random bytes for a WebAuthn challenge (at least 16 are required, §13.4.3)."""


class SecretUnavailableError(Exception):
    """The secret cannot be opened: its data key was erased (crypto-shredded) or is unknown."""


class SecretVault(Protocol):
    """Envelope encryption of shared secrets, one data key per owner.

    `seal` returns an opaque, self-describing ciphertext that is safe to keep in events;
    neither the secret nor the data key may ever be logged.
    """

    def seal(self, owner: UUID, secret: bytes) -> str: ...

    def open(self, owner: UUID, sealed: str) -> bytes:
        """The secret; raises SecretUnavailableError once the owner's key is erased."""

    def shred(self, owner: UUID) -> None:
        """Erase the owner's data key, making every secret sealed for them unreadable."""


class PasswordHasher(Protocol):
    """A slow, salted password hash (Argon2id). Never logs a password or a hash."""

    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool:
        """True when `password` matches; False (never an exception) when it does not."""


@dataclass(frozen=True, slots=True)
class OtpParameters:
    method: str  # "totp" | "hotp"
    algorithm: str  # "SHA1" | "SHA256" | "SHA512"
    digits: int
    period: int


class OtpVerifier(Protocol):
    """RFC 4226/6238 one-time codes. Must compare in constant time and never log codes."""

    def match(
        self,
        secret: bytes,
        code: str,
        *,
        params: OtpParameters,
        at: datetime,
        earliest: int,
        window: int,
    ) -> int | None:
        """The time step (TOTP) or counter (HOTP) that `code` matches, or None.

        TOTP looks at the steps within ±`window` of `at`; HOTP at counters `earliest` to
        `earliest + window`. Steps or counters below `earliest` never match, which is what
        makes a code single-use.
        """


class OtpProvisioner(Protocol):
    def uri(self, secret: bytes, *, params: OtpParameters, issuer: str, account: str) -> str:
        """The otpauth:// URI in the Key Uri Format."""

    def qr_svg(self, uri: str) -> str:
        """A QR code of `uri` as an SVG document."""


@dataclass(frozen=True, slots=True)
class RequestContext:
    ip: str
    user_agent: str
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    score: int  # 0 (no risk) to 100
    level: str  # "low" | "medium" | "high"
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"score": self.score, "level": self.level, "reasons": list(self.reasons)}


class RiskAssessor(Protocol):
    def assess(
        self, *, org_id: UUID, user_id: str, context: RequestContext, at: datetime
    ) -> RiskAssessment: ...


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    audience: str
    client_id: str
    org_id: UUID
    token_id: str
    issued_at: datetime
    expires_at: datetime
    auth_time: datetime
    acr: str
    amr: list[str]


class TokenIssuer(Protocol):
    def issue(self, claims: TokenClaims) -> str:
        """A signed access token carrying `claims`; the issuer adds `iss` and key id."""


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    """What a receiver answered: an HTTP status, or None and an error when none came."""

    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookSender(Protocol):
    """POSTs one signed webhook body. Never raises for network errors or HTTP statuses (they
    come back as a `WebhookResponse`), follows no redirects, and must not log the headers
    (the signature) or the body."""

    def post(self, url: str, *, body: bytes, headers: dict[str, str]) -> WebhookResponse: ...


# --- WebAuthn (W3C Web Authentication Level 3) -----------------------------------------------


class WebAuthnError(Exception):
    """A ceremony failed verification; the message says why and never holds key material."""


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Who the credentials are scoped to, and which origins may run a ceremony.

    `top_origins` lists the top-level origins a cross-origin (iframe) ceremony may come from;
    a ceremony with `crossOrigin: true` from any other top origin, or with none, is refused.
    """

    rp_id: str
    name: str
    origins: tuple[str, ...]
    top_origins: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthenticatorInfo:
    """One authenticator model as the FIDO Metadata Service (MDS3) describes it."""

    aaguid: str  # lower-case UUID string
    description: str
    icon: str | None  # a data: URL, as MDS3 ships it
    certification: str | None  # e.g. "FIDO_CERTIFIED_L2", the latest certification status
    status: str  # the latest status report's status, e.g. "FIDO_CERTIFIED", "REVOKED"
    compromised: bool  # revoked, or any *_COMPROMISE status
    root_certificates: tuple[bytes, ...]  # DER trust anchors for its attestation chains


class AuthenticatorMetadata(Protocol):
    """A verified MDS3 BLOB, loaded from a file (no network at runtime)."""

    @property
    def serial(self) -> int:
        """The BLOB's `no`: a newer BLOB has a larger number (0 when none is loaded)."""

    def lookup(self, aaguid: str) -> AuthenticatorInfo | None: ...


@dataclass(frozen=True, slots=True)
class RegisteredCredential:
    """What a verified registration ceremony yields; the public key is not a secret."""

    credential_id: bytes
    public_key: bytes  # COSE_Key
    algorithm: int  # COSE algorithm identifier, e.g. -7 (ES256)
    sign_count: int
    aaguid: str  # lower-case UUID string
    fmt: str  # attestation statement format
    attestation_type: str  # "none" | "self" | "basic" | "attca" | "anonca"
    attested: bool  # the attestation chain verified up to a metadata trust anchor
    user_present: bool
    user_verified: bool
    backup_eligible: bool
    backed_up: bool
    transports: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    credential_id: bytes
    sign_count: int
    user_verified: bool
    backup_eligible: bool
    backed_up: bool
    user_handle: bytes | None


class WebAuthnCeremonies(Protocol):
    """Registration and authentication ceremonies (WebAuthn Level 3 §7.1 and §7.2).

    Options come back as the Level 3 JSON forms (`PublicKeyCredentialCreationOptionsJSON`,
    `PublicKeyCredentialRequestOptionsJSON`), ready for `parse*OptionsFromJSON`. Credentials
    are accepted as `PublicKeyCredential.toJSON()` produces them. Every failure raises
    `WebAuthnError`.
    """

    def creation_options(
        self,
        *,
        rp: RelyingParty,
        user_handle: bytes,
        user_name: str,
        display_name: str,
        challenge: bytes,
        exclude: list[bytes],
        attachment: str | None,  # "platform" | "cross-platform" | None
        resident_key: str,  # "discouraged" | "preferred" | "required"
        user_verification: str,  # "discouraged" | "preferred" | "required"
        attestation: str,  # "none" | "direct"
        timeout_ms: int,
    ) -> dict[str, Any]: ...

    def request_options(
        self,
        *,
        rp: RelyingParty,
        challenge: bytes,
        allow: list[tuple[bytes, tuple[str, ...]]],  # (credential id, transports); [] = passkey
        user_verification: str,
        timeout_ms: int,
    ) -> dict[str, Any]: ...

    def credential_id(self, credential: dict[str, Any]) -> bytes:
        """The raw credential id a browser's JSON names (`rawId`), before any verification."""

    def verify_registration(
        self,
        credential: dict[str, Any],
        *,
        rp: RelyingParty,
        challenge: bytes,
        require_user_verification: bool,
        metadata: AuthenticatorMetadata,
    ) -> RegisteredCredential:
        """Verify the ceremony and its attestation; chains are checked against the roots
        `metadata` holds for the credential's AAGUID (`attested` False when it has none)."""

    def verify_authentication(
        self,
        credential: dict[str, Any],
        *,
        rp: RelyingParty,
        challenge: bytes,
        public_key: bytes,
        require_user_verification: bool,
    ) -> VerifiedAssertion:
        """Verify an assertion's client data, authenticator data and signature. Sign-counter
        policy is the caller's: the counter is returned, not judged."""


# --- Out-of-band codes: SMS, voice and email ----------------------------------------------------


class InvalidPhoneNumberError(ValueError):
    """Not a valid, dialable phone number."""


@dataclass(frozen=True, slots=True)
class PhoneNumberInfo:
    e164: str  # "+447400123456"
    region: str  # ISO 3166-1 alpha-2, e.g. "GB"
    country_code: int  # 44
    number_type: str  # "mobile" | "fixed_line" | "fixed_line_or_mobile" | "voip" | "toll_free"
    #                   | "premium_rate" | "shared_cost" | "personal_number" | "pager" | "uan"
    #                   | "voicemail" | "unknown"
    carrier: str | None  # the original allocation's carrier name, where known (never trusted)
    masked: str  # what users may be shown: the country code and the last digits only


class PhoneNumbers(Protocol):
    def parse(self, raw: str, *, default_region: str | None = None) -> PhoneNumberInfo:
        """Parse and validate; raises InvalidPhoneNumberError."""


@dataclass(frozen=True, slots=True)
class OutboundCode:
    """One code to deliver. `code` is handed to the provider and must never be logged."""

    message_id: str  # Tessera's id for this send (idempotency and correlation)
    channel: str  # "sms" | "voice" | "email"
    to: str  # E.164 number or email address
    code: str
    locale: str  # a language tag the templates know, e.g. "de"
    issuer: str  # the organisation's name, shown in the message
    ttl_minutes: int
    region: str | None = None  # destination country of a phone number
    carrier: str | None = None
    link: str | None = None  # email: a link that brings the code back to the application


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    provider: str  # "twilio" | "vonage" | "webhook" | "console" | "smtp"
    accepted: bool
    provider_message_id: str | None = None
    error: str | None = None  # a short reason; never the code or a credential
    elapsed_ms: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    attempts: tuple[DeliveryAttempt, ...]

    @property
    def accepted_by(self) -> DeliveryAttempt | None:
        return next((a for a in self.attempts if a.accepted), None)


class CodeSender(Protocol):
    """Routes a code to providers in the order the routing rules give for its destination,
    failing over on an error, a timeout or an open circuit breaker. Never raises for a
    provider's failure: every attempt comes back in the report."""

    def send(self, message: OutboundCode) -> DeliveryReport: ...


class MessageLocales(Protocol):
    def choose(self, *, stored: str | None, accept_language: str | None, region: str | None) -> str:
        """The user's stored locale, else the best `Accept-Language` match, else the number's
        region's language; English when the templates know none of them."""


class InvalidCallbackError(Exception):
    """A delivery-status callback whose signature or body does not verify."""


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    provider: str
    provider_message_id: str
    status: str  # "queued" | "sent" | "delivered" | "failed" | "undelivered"
    error_code: str | None = None


class DeliveryCallbacks(Protocol):
    def parse(
        self, provider: str, *, url: str, headers: dict[str, str], body: bytes
    ) -> DeliveryStatus:
        """Verify a provider's signed status callback and read it; raises
        InvalidCallbackError when the signature or the body is wrong."""


class SendCounters(Protocol):
    """Fixed-window counters shared by every process (toll-fraud caps)."""

    def hit(self, keys: list[str], *, window_seconds: int, at: datetime) -> dict[str, int]:
        """Add one to each key's count in the window containing `at`; the new counts."""


class CodeHasher(Protocol):
    """Keyed hashes of out-of-band codes: a code is stored only as this digest, bound to what
    it was sent for, and compared in constant time."""

    def digest(self, code: str, *, binding: str) -> str: ...

    def matches(self, code: str, *, binding: str, digest: str) -> bool: ...
