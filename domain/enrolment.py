"""Enrolment: one authenticator bound to one user of one organisation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.assurance import KNOWN_METHODS, OTP_METHODS, OUT_OF_BAND_METHODS
from domain.codes import check_resend, missed, open_code

ALGORITHMS = frozenset({"SHA1", "SHA256", "SHA512"})
DIGITS = frozenset({6, 8})
MIN_PERIOD, MAX_PERIOD = 15, 120  # NIST SFOA-3: a time-based nonce changes at least every 2 min


class EnrolmentError(Exception):
    """Base class of the errors an enrolment raises."""


class InvalidOtpParametersError(EnrolmentError):
    """The requested algorithm, digits or period are not supported."""


class EnrolmentNotPendingError(EnrolmentError):
    """Only a pending enrolment can be confirmed."""


class EnrolmentNotActiveError(EnrolmentError):
    """The enrolment is pending, revoked or locked and cannot verify a login."""


class CodeReplayedError(EnrolmentError):
    """The time step or counter was already used: a code is accepted at most once."""


class RegistrationExpiredError(EnrolmentError):
    """The WebAuthn registration challenge expired; start a new enrolment."""


class UserVerificationRequiredError(EnrolmentError):
    """The credential was enrolled with user verification required; the assertion lacks UV."""


class PossibleCloneError(EnrolmentError):
    """The signature counter did not increase: the key may have been cloned."""


USER_VERIFICATION = ("discouraged", "preferred", "required")
ATTACHMENTS = ("platform", "cross-platform")
#: What `register_credential` needs to know of a verified credential (all JSON values).
WEBAUTHN_CREDENTIAL_KEYS = frozenset(
    {
        "credential_id",  # base64url
        "public_key",  # base64url COSE_Key
        "algorithm",
        "sign_count",
        "aaguid",
        "fmt",
        "attestation_type",
        "attested",
        "backup_eligible",
        "backed_up",
        "transports",
        "uv_required",
        "name",  # the authenticator model's name from metadata, or None
    }
)


def check_otp_parameters(method: str, algorithm: str, digits: int, period: int) -> None:
    """Refuse parameters outside RFC 4226/6238 and the Key Uri Format."""
    if method not in KNOWN_METHODS or method not in OTP_METHODS:
        raise InvalidOtpParametersError(f"unsupported method {method!r}")
    if algorithm not in ALGORITHMS:
        raise InvalidOtpParametersError(f"algorithm must be one of {sorted(ALGORITHMS)}")
    if digits not in DIGITS:
        raise InvalidOtpParametersError("digits must be 6 or 8")
    if not MIN_PERIOD <= period <= MAX_PERIOD:
        raise InvalidOtpParametersError(f"period must be {MIN_PERIOD} to {MAX_PERIOD} seconds")


class Enrolment(Aggregate):
    """An authenticator's life: pending until a first valid code, active, then revoked.

    Rules: a one-time code's time step (TOTP) or counter (HOTP) is accepted once and never
    again; consecutive failures lock the enrolment at the policy's limit, and only an
    administrator unlocks it. The shared secret never enters an event: `secret_ref` is an
    envelope-encrypted blob from the secret vault.
    """

    id: UUID

    class Started(Aggregate.Created):
        org_id: UUID
        user_id: str
        method: str
        label: str
        algorithm: str
        digits: int
        period: int
        secret_ref: str
        at: datetime

    class Confirmed(Aggregate.Event):
        moving_factor: int
        at: datetime

    class CodeAccepted(Aggregate.Event):
        moving_factor: int
        at: datetime

    class CodeRejected(Aggregate.Event):
        at: datetime

    class Locked(Aggregate.Event):
        failures: int
        at: datetime

    class FailuresCleared(Aggregate.Event):
        at: datetime

    class Unlocked(Aggregate.Event):
        by: str
        at: datetime

    class Resynchronised(Aggregate.Event):
        counter: int
        at: datetime

    class Revoked(Aggregate.Event):
        by: str
        at: datetime

    class Renamed(Aggregate.Event):
        label: str
        by: str
        at: datetime

    # WebAuthn: the registration challenge, then the credential the ceremony produced.
    class RegistrationRequested(Aggregate.Event):
        challenge: str  # base64url; random, single-use, expires
        user_verification: str
        resident_key: str
        attachment: str | None
        expires_at: datetime
        at: datetime

    class CredentialRegistered(Aggregate.Event):
        credential: dict[str, Any]  # see `WebAuthnCredential` keys; the public key is not secret
        at: datetime

    class AssertionAccepted(Aggregate.Event):
        sign_count: int
        user_verified: bool
        backed_up: bool
        at: datetime

    class CloneSuspected(Aggregate.Event):
        stored_count: int
        presented_count: int
        rejected: bool
        at: datetime

    class Suspended(Aggregate.Event):
        reason: str
        at: datetime

    # SMS, voice and email: where codes go (sealed in `secret_ref`), and the enrolment's code.
    class DestinationRecorded(Aggregate.Event):
        masked: str
        region: str | None
        number_type: str | None
        carrier: str | None
        locale: str | None
        at: datetime

    class CodeIssued(Aggregate.Event):
        code: dict[str, Any]  # see `domain.codes.issue_code`: a keyed hash, never the code
        at: datetime

    class CodeMissed(Aggregate.Event):
        at: datetime

    class CodeUsed(Aggregate.Event):
        """A login code sent to this destination came back."""

        at: datetime

    @event(Started)
    def __init__(
        self,
        *,
        org_id: UUID,
        user_id: str,
        method: str,
        label: str,
        algorithm: str,
        digits: int,
        period: int,
        secret_ref: str,
        at: datetime,
    ) -> None:
        self.org_id = org_id
        self.user_id = user_id
        self.method = method
        self.label = label
        self.algorithm = algorithm
        self.digits = digits
        self.period = period
        self.secret_ref = secret_ref
        self.status = "pending"
        self.created_at = at
        self.confirmed_at: datetime | None = None
        self.last_used_at: datetime | None = None
        self.revoked_at: datetime | None = None
        self.counter = 0  # HOTP: the next counter value the verifier expects
        self.last_step: int | None = None  # TOTP: last accepted time step
        self.consecutive_failures = 0
        self.last_failure_at: datetime | None = None
        self.locked = False
        self.registration: dict[str, Any] | None = None  # WebAuthn: the open challenge
        self.credential: dict[str, Any] | None = None  # WebAuthn: the registered credential
        self.suspended_reason: str | None = None
        self.destination: dict[str, Any] | None = None  # SMS/voice/email: masked, region, ...
        self.pending_code: dict[str, Any] | None = None  # SMS/voice/email: the enrolment's code

    @classmethod
    def start(
        cls,
        *,
        enrolment_id: UUID,
        org_id: UUID,
        user_id: str,
        method: str,
        label: str,
        algorithm: str = "SHA1",
        digits: int = 6,
        period: int = 30,
        secret_ref: str,
        at: datetime,
    ) -> Enrolment:
        check_otp_parameters(method, algorithm, digits, period)
        return cls(  # type: ignore[call-arg]  # eventsourcing accepts id= for annotated ids
            id=enrolment_id,
            org_id=org_id,
            user_id=user_id,
            method=method,
            label=label,
            algorithm=algorithm,
            digits=digits,
            period=period,
            secret_ref=secret_ref,
            at=at,
        )

    @classmethod
    def start_webauthn(
        cls,
        *,
        enrolment_id: UUID,
        org_id: UUID,
        user_id: str,
        label: str,
        challenge: str,
        user_verification: str,
        resident_key: str,
        attachment: str | None,
        ttl: timedelta,
        at: datetime,
    ) -> Enrolment:
        """A security key, platform authenticator or passkey, pending its registration."""
        if user_verification not in USER_VERIFICATION or resident_key not in USER_VERIFICATION:
            raise EnrolmentError("user_verification and resident_key take WebAuthn enum values")
        if attachment not in (None, *ATTACHMENTS):
            raise EnrolmentError("authenticator_attachment must be platform or cross-platform")
        enrolment = cls(  # type: ignore[call-arg]  # eventsourcing accepts id=
            id=enrolment_id,
            org_id=org_id,
            user_id=user_id,
            method="webauthn",
            label=label,
            algorithm="",
            digits=0,
            period=0,
            secret_ref="",
            at=at,
        )
        enrolment._request_registration(
            challenge=challenge,
            user_verification=user_verification,
            resident_key=resident_key,
            attachment=attachment,
            expires_at=at + ttl,
            at=at,
        )
        return enrolment

    @classmethod
    def start_out_of_band(
        cls,
        *,
        enrolment_id: UUID,
        org_id: UUID,
        user_id: str,
        method: str,
        label: str,
        destination_ref: str,
        masked: str,
        region: str | None,
        number_type: str | None,
        carrier: str | None,
        locale: str | None,
        at: datetime,
    ) -> Enrolment:
        """A phone number (SMS, voice) or address (email), pending until a code comes back.
        `destination_ref` is the destination sealed by the secret vault, so erasing the user
        crypto-shreds it too."""
        if method not in OUT_OF_BAND_METHODS:
            raise EnrolmentError(f"unsupported method {method!r}")
        if method == "sms" and number_type == "fixed_line":
            raise EnrolmentError("a fixed-line number cannot receive SMS: enrol it for voice")
        enrolment = cls(  # type: ignore[call-arg]  # eventsourcing accepts id=
            id=enrolment_id,
            org_id=org_id,
            user_id=user_id,
            method=method,
            label=label,
            algorithm="",
            digits=6,
            period=0,
            secret_ref=destination_ref,
            at=at,
        )
        enrolment._record_destination(
            masked=masked,
            region=region,
            number_type=number_type,
            carrier=carrier,
            locale=locale,
            at=at,
        )
        return enrolment

    # --- queries -------------------------------------------------------------------------

    @property
    def is_usable(self) -> bool:
        return self.status == "active" and not self.locked

    def next_moving_factor(self) -> int:
        """Smallest time step or counter a new code may match (replay protection)."""
        if self.method == "hotp":
            return self.counter
        return 0 if self.last_step is None else self.last_step + 1

    @property
    def display_status(self) -> str:
        return "locked" if self.locked and self.status == "active" else self.status

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "enrolment_id": str(self.id),
            "method": self.method,
            "label": self.label,
            "status": self.display_status,
            "created_at": self.created_at,
            "confirmed_at": self.confirmed_at,
            "last_used_at": self.last_used_at,
        }
        if self.method in OTP_METHODS:
            summary.update(algorithm=self.algorithm, digits=self.digits, period=self.period)
        if self.credential is not None:
            c = self.credential
            summary["authenticator"] = {
                "aaguid": c["aaguid"],
                "name": c.get("name"),
                "attestation": c["fmt"],
                "attested": c["attested"],
                "backup_eligible": c["backup_eligible"],
                "backed_up": c["backed_up"],
                "user_verification_required": c["uv_required"],
                "transports": list(c["transports"]),
                "attachment": c.get("attachment"),
                "resident_key": c.get("resident_key"),
                "max_aal": self.webauthn_max_aal(),
            }
        if self.suspended_reason is not None:
            summary["suspended_reason"] = self.suspended_reason
        if self.destination is not None:
            summary["destination"] = self.destination["masked"]
        return summary

    # --- WebAuthn queries ------------------------------------------------------------------

    def open_registration(self, *, at: datetime) -> dict[str, Any]:
        """The pending registration challenge; raises once it expired or was used."""
        if self.method != "webauthn" or self.status != "pending" or self.registration is None:
            raise EnrolmentNotPendingError(self.id)
        if at >= self.registration["expires_at"]:
            raise RegistrationExpiredError(self.id)
        return self.registration

    @property
    def hardware_bound(self) -> bool:
        """Not backup-eligible: the private key cannot leave the authenticator."""
        return self.credential is not None and not self.credential["backup_eligible"]

    def webauthn_max_aal(self) -> int:
        """AAL3 needs a hardware-bound key attested by trusted metadata, verified with UV."""
        if self.credential is None:
            return 0
        if self.hardware_bound and self.credential["attested"]:
            return 3
        return 2

    def webauthn_factor(self, *, user_verified: bool, primary_factor_verified: bool) -> int:
        """The AAL one assertion with this credential reaches (see ADR 0015)."""
        if user_verified:
            return self.webauthn_max_aal()
        return 2 if primary_factor_verified else 1

    # --- commands ------------------------------------------------------------------------

    def confirm(self, moving_factor: int, *, at: datetime) -> None:
        """Activate on the first valid code, which is itself consumed."""
        if self.status != "pending":
            raise EnrolmentNotPendingError(self.id)
        self._check_fresh(moving_factor)
        self._confirm(moving_factor=moving_factor, at=at)

    def accept_code(self, moving_factor: int, *, at: datetime) -> None:
        """Record a successful login code; the same step or counter never works again."""
        if not self.is_usable:
            raise EnrolmentNotActiveError(self.id)
        self._check_fresh(moving_factor)
        self._accept_code(moving_factor=moving_factor, at=at)

    def reject_code(self, *, at: datetime, max_failures: int) -> None:
        """Count a wrong code; lock once `max_failures` consecutive codes were wrong."""
        if self.status == "revoked":
            return
        self._reject_code(at=at)
        if not self.locked and self.consecutive_failures >= max_failures:
            self._lock(failures=self.consecutive_failures, at=at)

    def clear_failures(self, *, at: datetime) -> None:
        """The user proved possession with another authenticator: forget earlier misses."""
        if self.consecutive_failures and not self.locked:
            self._clear_failures(at=at)

    def unlock(self, *, by: str, at: datetime) -> None:
        if not self.locked and self.consecutive_failures == 0:
            return
        self._unlock(by=by, at=at)

    def resynchronise(self, counter: int, *, at: datetime) -> None:
        """HOTP: move the counter past two consecutive codes the user just produced."""
        if self.method != "hotp":
            raise EnrolmentError("only an HOTP enrolment can be resynchronised")
        if not self.is_usable:
            raise EnrolmentNotActiveError(self.id)
        self._check_fresh(counter)
        self._resynchronise(counter=counter, at=at)

    def revoke(self, *, by: str, at: datetime) -> None:
        if self.status == "revoked":
            return
        self._revoke(by=by, at=at)

    def rename(self, label: str, *, by: str, at: datetime) -> None:
        if not 1 <= len(label) <= 64:
            raise EnrolmentError("a name has 1 to 64 characters")
        if self.status == "revoked":
            raise EnrolmentNotActiveError(self.id)
        if label != self.label:
            self._rename(label=label, by=by, at=at)

    # --- WebAuthn commands -----------------------------------------------------------------

    def register_credential(self, credential: dict[str, Any], *, at: datetime) -> None:
        """Activate with the credential a verified registration ceremony produced."""
        self.open_registration(at=at)
        missing = WEBAUTHN_CREDENTIAL_KEYS - set(credential)
        if missing:
            raise EnrolmentError(f"credential lacks {sorted(missing)}")
        self._register_credential(credential=credential, at=at)

    def accept_assertion(
        self,
        *,
        sign_count: int,
        user_verified: bool,
        backed_up: bool,
        reject_clones: bool,
        at: datetime,
    ) -> None:
        """Record a verified assertion; a sign counter that did not grow, where the
        authenticator keeps one, is recorded as a possible clone and refused when the policy
        says so (WebAuthn §6.1.1)."""
        if not self.is_usable or self.credential is None:
            raise EnrolmentNotActiveError(self.id)
        if self.credential["uv_required"] and not user_verified:
            raise UserVerificationRequiredError(self.id)
        stored = self.credential["sign_count"]
        if (sign_count or stored) and sign_count <= stored:
            self._suspect_clone(
                stored_count=stored, presented_count=sign_count, rejected=reject_clones, at=at
            )
            if reject_clones:
                raise PossibleCloneError(self.id)
        self._accept_assertion(
            sign_count=sign_count, user_verified=user_verified, backed_up=backed_up, at=at
        )

    # --- SMS, voice and email commands --------------------------------------------------------

    def issue_code(self, code: dict[str, Any], *, at: datetime) -> None:
        """A new enrolment code (it replaces any earlier one); only while pending."""
        if self.status != "pending" or self.method not in OUT_OF_BAND_METHODS:
            raise EnrolmentNotPendingError(self.id)
        check_resend(self.pending_code, at=at)
        self._issue_code(code=code, at=at)

    def open_code(self, *, at: datetime) -> dict[str, Any]:
        """The enrolment's code, while it may still be tried."""
        if self.status != "pending":
            raise EnrolmentNotPendingError(self.id)
        return open_code(self.pending_code, at=at)

    def confirm_code(self, *, at: datetime) -> None:
        """The enrolment's code came back: activate (the code is used up)."""
        self.open_code(at=at)
        self._confirm(moving_factor=0, at=at)

    def use_code(self, *, at: datetime) -> None:
        """A login's SMS, voice or email code sent here was entered correctly."""
        if not self.is_usable or self.method not in OUT_OF_BAND_METHODS:
            raise EnrolmentNotActiveError(self.id)
        self._use_code(at=at)

    def miss_code(self, *, at: datetime) -> None:
        if self.pending_code is not None:
            self._miss_code(at=at)

    def suspend(self, reason: str, *, at: datetime) -> None:
        """Stop a credential whose authenticator model is now known to be compromised."""
        if self.status != "active":
            return
        self._suspend(reason=reason, at=at)

    def _check_fresh(self, moving_factor: int) -> None:
        if moving_factor < self.next_moving_factor():
            raise CodeReplayedError(self.id)

    # --- state changes (replayed from events: no checks here) ----------------------------

    def _use(self, moving_factor: int) -> None:
        if self.method == "hotp":
            self.counter = moving_factor + 1
        else:
            self.last_step = moving_factor

    @event(DestinationRecorded)
    def _record_destination(
        self,
        masked: str,
        region: str | None,
        number_type: str | None,
        carrier: str | None,
        locale: str | None,
        at: datetime,
    ) -> None:
        self.destination = {
            "masked": masked,
            "region": region,
            "number_type": number_type,
            "carrier": carrier,
            "locale": locale,
        }

    @event(CodeIssued)
    def _issue_code(self, code: dict[str, Any], at: datetime) -> None:
        self.pending_code = dict(code)

    @event(CodeUsed)
    def _use_code(self, at: datetime) -> None:
        self.last_used_at = at

    @event(CodeMissed)
    def _miss_code(self, at: datetime) -> None:
        assert self.pending_code is not None
        self.pending_code = missed(self.pending_code)

    @event(Confirmed)
    def _confirm(self, moving_factor: int, at: datetime) -> None:
        self.pending_code = None
        self._use(moving_factor)
        self.status = "active"
        self.confirmed_at = self.last_used_at = at
        self.consecutive_failures = 0
        self.last_failure_at = None

    @event(CodeAccepted)
    def _accept_code(self, moving_factor: int, at: datetime) -> None:
        self._use(moving_factor)
        self.last_used_at = at
        self.consecutive_failures = 0
        self.last_failure_at = None

    @event(CodeRejected)
    def _reject_code(self, at: datetime) -> None:
        self.consecutive_failures += 1
        self.last_failure_at = at

    @event(Locked)
    def _lock(self, failures: int, at: datetime) -> None:
        self.locked = True

    @event(FailuresCleared)
    def _clear_failures(self, at: datetime) -> None:
        self.consecutive_failures = 0
        self.last_failure_at = None

    @event(Unlocked)
    def _unlock(self, by: str, at: datetime) -> None:
        self.locked = False
        self.consecutive_failures = 0
        self.last_failure_at = None

    @event(Resynchronised)
    def _resynchronise(self, counter: int, at: datetime) -> None:
        self.counter = counter + 1

    @event(Revoked)
    def _revoke(self, by: str, at: datetime) -> None:
        self.status = "revoked"
        self.revoked_at = at
        self.registration = None

    @event(Renamed)
    def _rename(self, label: str, by: str, at: datetime) -> None:
        self.label = label

    @event(RegistrationRequested)
    def _request_registration(
        self,
        challenge: str,
        user_verification: str,
        resident_key: str,
        attachment: str | None,
        expires_at: datetime,
        at: datetime,
    ) -> None:
        self.registration = {
            "challenge": challenge,
            "user_verification": user_verification,
            "resident_key": resident_key,
            "attachment": attachment,
            "expires_at": expires_at,
        }

    @event(CredentialRegistered)
    def _register_credential(self, credential: dict[str, Any], at: datetime) -> None:
        assert self.registration is not None
        requested = {k: self.registration[k] for k in ("attachment", "resident_key")}
        self.credential = {**requested, **credential}
        self.registration = None
        self.status = "active"
        self.confirmed_at = at

    @event(AssertionAccepted)
    def _accept_assertion(
        self, sign_count: int, user_verified: bool, backed_up: bool, at: datetime
    ) -> None:
        assert self.credential is not None
        self.credential = {**self.credential, "sign_count": sign_count, "backed_up": backed_up}
        self.last_used_at = at

    @event(CloneSuspected)
    def _suspect_clone(
        self, stored_count: int, presented_count: int, rejected: bool, at: datetime
    ) -> None:
        pass

    @event(Suspended)
    def _suspend(self, reason: str, at: datetime) -> None:
        self.status = "suspended"
        self.suspended_reason = reason
