"""AuthenticationSession: one login (or step-up) attempt, from request to token."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.assurance import aal_for_factors, amr_for
from domain.codes import NoCodeError, check_resend, missed, open_code


class AuthenticationError(Exception):
    """Base class of the errors an authentication session raises."""


class SessionClosedError(AuthenticationError):
    """The session is satisfied, failed or expired and takes no more attempts."""

    def __init__(self, session_id: UUID, status: str) -> None:
        super().__init__(f"authentication {session_id} is {status}")
        self.status = status


class AuthenticationSession(Aggregate):
    """A login's state: pending until its factors reach the required AAL.

    Rules: it expires at `expires_at`; after the policy's number of failed attempts it
    fails; once satisfied it records the id of the one token issued for it.
    """

    id: UUID

    class Started(Aggregate.Created):
        org_id: UUID
        user_id: str
        context: dict[str, Any]
        operation: str | None
        risk: dict[str, Any]
        required_aal: int | None
        methods: list[str]
        primary_factor_verified: bool
        max_attempts: int
        expires_at: datetime
        at: datetime

    class FactorVerified(Aggregate.Event):
        method: str
        enrolment_id: UUID
        at: datetime

    class KeyVerified(Aggregate.Event):
        """A WebAuthn assertion verified; `user_id` names the user of a usernameless login."""

        enrolment_id: UUID
        user_id: str
        aal: int
        amr: list[str]
        phishing_resistant: bool
        hardware_bound: bool
        at: datetime

    class WebAuthnRequested(Aggregate.Event):
        challenge: str  # base64url
        credential_ids: list[str]  # base64url; empty for a usernameless (passkey) login
        user_verification: str
        at: datetime

    class CodeSent(Aggregate.Event):
        """An SMS, voice or email code for this login (see `domain.codes`); it replaces an
        earlier one."""

        code: dict[str, Any]
        at: datetime

    class CodeMissed(Aggregate.Event):
        at: datetime

    class AttemptFailed(Aggregate.Event):
        method: str
        at: datetime

    class Satisfied(Aggregate.Event):
        aal: int
        amr: list[str]
        token_id: str
        token_expires_at: datetime
        at: datetime

    class Denied(Aggregate.Event):
        reason: str
        at: datetime

    class Expired(Aggregate.Event):
        at: datetime

    @event(Started)
    def __init__(
        self,
        *,
        org_id: UUID,
        user_id: str,
        context: dict[str, Any],
        operation: str | None,
        risk: dict[str, Any],
        required_aal: int | None,
        methods: list[str],
        primary_factor_verified: bool,
        max_attempts: int,
        expires_at: datetime,
        at: datetime,
    ) -> None:
        self.org_id = org_id
        self.user_id = user_id
        self.context = context
        self.operation = operation
        self.risk = risk
        self.required_aal = required_aal
        self.methods = methods
        self.primary_factor_verified = primary_factor_verified
        self.max_attempts = max_attempts
        self.expires_at = expires_at
        self.created_at = at
        self.status = "pending"
        self.factors: list[dict[str, Any]] = []
        self.attempts = 0
        self.failed_attempts = 0
        self.aal = 0
        self.amr: list[str] = []
        self.auth_time: datetime | None = None
        self.token_id: str | None = None
        self.token_expires_at: datetime | None = None
        self.denial_reason: str | None = None
        self.webauthn: dict[str, Any] | None = None  # the open WebAuthn challenge
        self.code: dict[str, Any] | None = None  # the open SMS, voice or email code

    @classmethod
    def start(
        cls,
        *,
        session_id: UUID,
        org_id: UUID,
        user_id: str,
        context: dict[str, Any],
        operation: str | None,
        risk: dict[str, Any],
        required_aal: int | None,
        methods: list[str],
        primary_factor_verified: bool,
        max_attempts: int,
        ttl: timedelta,
        at: datetime,
    ) -> AuthenticationSession:
        session = cls(  # type: ignore[call-arg]  # eventsourcing accepts id=
            id=session_id,
            org_id=org_id,
            user_id=user_id,
            context=context,
            operation=operation,
            risk=risk,
            required_aal=required_aal,
            methods=methods,
            primary_factor_verified=primary_factor_verified,
            max_attempts=max_attempts,
            expires_at=at + ttl,
            at=at,
        )
        if required_aal is None:
            session._deny(reason="risk", at=at)
        return session

    # --- queries -------------------------------------------------------------------------

    def status_at(self, at: datetime) -> str:
        if self.status == "pending" and at >= self.expires_at:
            return "expired"
        return self.status

    def verified_methods(self) -> list[str]:
        return [f["method"] for f in self.factors]

    @property
    def usernameless(self) -> bool:
        """Started without a user id: the passkey's user handle will name the user."""
        return self.user_id == ""

    # --- commands ------------------------------------------------------------------------

    def ensure_open(self, *, at: datetime) -> None:
        """Raise unless the session still takes attempts; record expiry when it is due."""
        if self.status == "pending" and at >= self.expires_at:
            self._expire(at=at)
        if self.status != "pending":
            raise SessionClosedError(self.id, self.status)

    def verify_factor(self, method: str, enrolment_id: UUID, *, at: datetime) -> bool:
        """Record a verified factor; True when the session now meets its required AAL."""
        self.ensure_open(at=at)
        self._verify_factor(method=method, enrolment_id=enrolment_id, at=at)
        return self.reached_aal() >= (self.required_aal or 4)

    def send_code(self, code: dict[str, Any], *, at: datetime) -> None:
        """Record a new out-of-band code, after the resend cool-down of the last one."""
        self.ensure_open(at=at)
        check_resend(self.code, at=at)
        self._send_code(code=code, at=at)

    def open_code(self, method: str, *, at: datetime) -> dict[str, Any]:
        """The code sent over `method`'s channel, while it may still be tried."""
        code = open_code(self.code, at=at)
        if code["channel"] != method:
            raise NoCodeError(f"no {method} code was sent for this login")
        return code

    def miss_code(self, method: str, *, at: datetime) -> None:
        """A wrong out-of-band code: one try fewer for it, one failed attempt for the login."""
        self.ensure_open(at=at)
        if self.code is not None and self.code["channel"] == method:
            self._miss_code(at=at)
        self.fail_attempt(method, at=at)

    def request_webauthn(
        self, *, challenge: str, credential_ids: list[str], user_verification: str, at: datetime
    ) -> None:
        """Open a WebAuthn challenge; it replaces an earlier one and lives until it is used."""
        self.ensure_open(at=at)
        self._request_webauthn(
            challenge=challenge,
            credential_ids=credential_ids,
            user_verification=user_verification,
            at=at,
        )

    def verify_key(
        self,
        *,
        enrolment_id: UUID,
        user_id: str,
        aal: int,
        amr: list[str],
        hardware_bound: bool,
        at: datetime,
    ) -> bool:
        """Record a verified assertion, which consumes the challenge; True when the session
        now meets its required AAL."""
        self.ensure_open(at=at)
        if self.webauthn is None:
            raise AuthenticationError("no WebAuthn challenge is open for this login")
        if not self.usernameless and user_id != self.user_id:
            raise AuthenticationError("the credential belongs to another user")
        self._verify_key(
            enrolment_id=enrolment_id,
            user_id=user_id,
            aal=aal,
            amr=amr,
            phishing_resistant=True,
            hardware_bound=hardware_bound,
            at=at,
        )
        return self.reached_aal() >= (self.required_aal or 4)

    def reached_aal(self) -> int:
        """The strongest single factor's AAL (factors of one kind do not add up)."""
        codes = [f["method"] for f in self.factors if "aal" not in f]
        keys = [int(f["aal"]) for f in self.factors if "aal" in f]
        return max(
            [aal_for_factors(codes, primary_factor_verified=self.primary_factor_verified), *keys]
        )

    def phishing_resistance(self) -> str | None:
        """What the verified factors prove, as an OpenID EAP ACR value: `phrh` (phishing-resistant
        and hardware-bound), `phr`, or None."""
        keys = [f for f in self.factors if f.get("phishing_resistant")]
        if not keys:
            return None
        return "phrh" if any(f["hardware_bound"] for f in keys) else "phr"

    def fail_attempt(self, method: str, *, at: datetime) -> None:
        """Count a wrong answer; the session fails once it used all its attempts."""
        self.ensure_open(at=at)
        self._attempt_failed(method=method, at=at)
        if self.failed_attempts >= self.max_attempts:
            self._deny(reason="too_many_attempts", at=at)

    def satisfy(self, *, token_id: str, token_ttl: timedelta, at: datetime) -> None:
        self.ensure_open(at=at)
        aal = self.reached_aal()
        if aal < (self.required_aal or 4):
            raise AuthenticationError("the verified factors do not reach the required AAL")
        methods = [f["method"] for f in self.factors if "amr" not in f]
        extra = [f["amr"] for f in self.factors if "amr" in f]
        self._satisfy(
            aal=aal,
            amr=amr_for(methods, extra),
            token_id=token_id,
            token_expires_at=at + token_ttl,
            at=at,
        )

    # --- state changes -------------------------------------------------------------------

    @event(FactorVerified)
    def _verify_factor(self, method: str, enrolment_id: UUID, at: datetime) -> None:
        if self.code is not None and self.code["channel"] == method:
            self.code = None  # an out-of-band code is used up
        self.attempts += 1
        self.factors.append({"method": method, "enrolment_id": str(enrolment_id), "at": at})

    @event(CodeSent)
    def _send_code(self, code: dict[str, Any], at: datetime) -> None:
        self.code = dict(code)

    @event(CodeMissed)
    def _miss_code(self, at: datetime) -> None:
        assert self.code is not None
        self.code = missed(self.code)

    @event(WebAuthnRequested)
    def _request_webauthn(
        self, challenge: str, credential_ids: list[str], user_verification: str, at: datetime
    ) -> None:
        self.webauthn = {
            "challenge": challenge,
            "credential_ids": list(credential_ids),
            "user_verification": user_verification,
        }

    @event(KeyVerified)
    def _verify_key(
        self,
        enrolment_id: UUID,
        user_id: str,
        aal: int,
        amr: list[str],
        phishing_resistant: bool,
        hardware_bound: bool,
        at: datetime,
    ) -> None:
        self.attempts += 1
        self.user_id = user_id
        self.webauthn = None
        self.factors.append(
            {
                "method": "webauthn",
                "enrolment_id": str(enrolment_id),
                "at": at,
                "aal": aal,
                "amr": list(amr),
                "phishing_resistant": phishing_resistant,
                "hardware_bound": hardware_bound,
            }
        )

    @event(AttemptFailed)
    def _attempt_failed(self, method: str, at: datetime) -> None:
        self.attempts += 1
        self.failed_attempts += 1

    @event(Satisfied)
    def _satisfy(
        self, aal: int, amr: list[str], token_id: str, token_expires_at: datetime, at: datetime
    ) -> None:
        self.status = "satisfied"
        self.aal = aal
        self.amr = amr
        self.auth_time = at
        self.token_id = token_id
        self.token_expires_at = token_expires_at

    @event(Denied)
    def _deny(self, reason: str, at: datetime) -> None:
        self.status = "failed"
        self.denial_reason = reason

    @event(Expired)
    def _expire(self, at: datetime) -> None:
        self.status = "expired"
