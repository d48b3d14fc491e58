"""Checking a one-time code against a user's enrolments, shared by confirm and verify."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from application.errors import InvalidCodeError, ThrottledError
from application.ports import OtpParameters, OtpVerifier, SecretUnavailableError, SecretVault
from domain.account import Account
from domain.enrolment import Enrolment
from domain.policy import Policy

_SEPARATORS = re.compile(r"[\s-]")
_CODE = re.compile(r"[0-9]{6,8}")


def normalise_code(code: str) -> str | None:
    """Digits only, tolerating the spaces and dashes apps show; None when it cannot be a code."""
    cleaned = _SEPARATORS.sub("", code)
    return cleaned if _CODE.fullmatch(cleaned) else None


def params_of(enrolment: Enrolment) -> OtpParameters:
    return OtpParameters(
        method=enrolment.method,
        algorithm=enrolment.algorithm,
        digits=enrolment.digits,
        period=enrolment.period,
    )


@dataclass(frozen=True, slots=True)
class CodeChecker:
    """Throttle first, then match a code in constant time against candidate enrolments."""

    vault: SecretVault
    otp: OtpVerifier

    def check_throttle(self, account: Account, policy: Policy, *, at: datetime) -> None:
        rule = policy.throttle
        if account.is_locked(rule):
            raise ThrottledError(rule.max_delay_seconds, locked=True)
        wait = account.retry_after(rule, at=at)
        if wait:
            raise ThrottledError(wait)

    def find_match(
        self,
        code: str,
        candidates: list[Enrolment],
        policy: Policy,
        *,
        account: Account,
        at: datetime,
    ) -> tuple[Enrolment, int] | None:
        normalised = normalise_code(code)
        if normalised is None:
            return None
        for enrolment in candidates:
            window = (
                policy.settings["hotp_look_ahead"]
                if enrolment.method == "hotp"
                else policy.settings["totp_drift_steps"]
            )
            try:
                secret = self.vault.open(account.id, enrolment.secret_ref)
            except SecretUnavailableError:
                continue
            moving_factor = self.otp.match(
                secret,
                normalised,
                params=params_of(enrolment),
                at=at,
                earliest=enrolment.next_moving_factor(),
                window=window,
            )
            if moving_factor is not None:
                return enrolment, moving_factor
        return None

    def record_failure(
        self, candidates: list[Enrolment], policy: Policy, *, account: Account, at: datetime
    ) -> None:
        """Count the failure on the user and on every authenticator the code was tried on."""
        account.record_failure(at=at)
        for enrolment in candidates:
            enrolment.reject_code(at=at, max_failures=policy.settings["max_failed_attempts"])


def refuse_code(authentication_id: UUID | None = None) -> InvalidCodeError:
    return InvalidCodeError("the code is not valid", authentication_id=authentication_id)
