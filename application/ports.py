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
