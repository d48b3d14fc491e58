"""Enrolment: one authenticator bound to one user of one organisation."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.assurance import KNOWN_METHODS, OTP_METHODS

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

    # --- queries -------------------------------------------------------------------------

    @property
    def is_usable(self) -> bool:
        return self.status == "active" and not self.locked

    def next_moving_factor(self) -> int:
        """Smallest time step or counter a new code may match (replay protection)."""
        if self.method == "hotp":
            return self.counter
        return 0 if self.last_step is None else self.last_step + 1

    def summary(self) -> dict[str, Any]:
        return {
            "enrolment_id": str(self.id),
            "method": self.method,
            "label": self.label,
            "status": "locked" if self.locked and self.status == "active" else self.status,
            "algorithm": self.algorithm,
            "digits": self.digits,
            "period": self.period,
            "created_at": self.created_at,
            "confirmed_at": self.confirmed_at,
            "last_used_at": self.last_used_at,
        }

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

    def _check_fresh(self, moving_factor: int) -> None:
        if moving_factor < self.next_moving_factor():
            raise CodeReplayedError(self.id)

    # --- state changes (replayed from events: no checks here) ----------------------------

    def _use(self, moving_factor: int) -> None:
        if self.method == "hotp":
            self.counter = moving_factor + 1
        else:
            self.last_step = moving_factor

    @event(Confirmed)
    def _confirm(self, moving_factor: int, at: datetime) -> None:
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
