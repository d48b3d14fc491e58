"""Policy: what an organisation allows and what a login requires."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.assurance import AAL_VALUES, KNOWN_METHODS
from domain.throttle import ThrottleRule

RISK_LEVELS = ("low", "medium", "high")
RISK_RESPONSES = frozenset({"allow", "step_up", "deny"})
NIST_MAX_FAILURES = 100  # SP 800-63B §3.2.2 [RL-2]


class PolicyError(Exception):
    """Base class of the errors a policy raises."""


class InvalidPolicyError(PolicyError):
    """A requested setting is outside what the standards allow."""


DEFAULTS: dict[str, Any] = {
    "allowed_methods": ["totp", "hotp"],
    "login_aal": 2,
    # The calling application verifies a memorised secret before asking Tessera for the second
    # layer, so an OTP completes AAL2 (NIST N-2). Set False when Tessera's factor stands alone.
    "primary_factor_verified": True,
    "step_up": {},  # operation name -> AAL it requires
    "risk_response": {"low": "allow", "medium": "allow", "high": "step_up"},
    "max_failed_attempts": 10,  # PCI DSS 8.3.4
    "free_attempts": 3,
    "max_backoff_seconds": 900,
    "session_attempts": 5,
    "session_ttl_seconds": 300,
    "totp_drift_steps": 1,  # RFC 6238 §5.2
    "hotp_look_ahead": 10,
    "token_ttl_seconds": 300,
    "token_audience": None,
}


def validate_settings(settings: dict[str, Any]) -> None:
    """Refuse a setting outside the standards; `settings` is a full or partial policy."""
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise InvalidPolicyError(f"unknown settings: {sorted(unknown)}")

    def _int(name: str, low: int, high: int) -> None:
        value = settings.get(name)
        if name in settings and (
            not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high
        ):
            raise InvalidPolicyError(f"{name} must be an integer from {low} to {high}")

    _int("login_aal", 1, 3)
    _int("max_failed_attempts", 1, NIST_MAX_FAILURES)
    _int("free_attempts", 0, NIST_MAX_FAILURES)
    _int("max_backoff_seconds", 1, 86_400)
    _int("session_attempts", 1, NIST_MAX_FAILURES)
    _int("session_ttl_seconds", 30, 3_600)
    _int("totp_drift_steps", 0, 10)
    _int("hotp_look_ahead", 0, 100)
    _int("token_ttl_seconds", 30, 86_400)
    if "allowed_methods" in settings:
        methods = settings["allowed_methods"]
        if not isinstance(methods, list) or not methods or not set(methods) <= KNOWN_METHODS:
            raise InvalidPolicyError(
                f"allowed_methods must list one or more of {sorted(KNOWN_METHODS)}"
            )
    if "primary_factor_verified" in settings and not isinstance(
        settings["primary_factor_verified"], bool
    ):
        raise InvalidPolicyError("primary_factor_verified must be true or false")
    if "step_up" in settings:
        step_up = settings["step_up"]
        if not isinstance(step_up, dict) or not all(
            isinstance(k, str) and v in AAL_VALUES for k, v in step_up.items()
        ):
            raise InvalidPolicyError("step_up maps operation names to an AAL of 1, 2 or 3")
    if "risk_response" in settings:
        response = settings["risk_response"]
        if not isinstance(response, dict) or not all(
            k in RISK_LEVELS and v in RISK_RESPONSES for k, v in response.items()
        ):
            raise InvalidPolicyError("risk_response maps low/medium/high to allow/step_up/deny")
    audience = settings.get("token_audience")
    if audience is not None and (not isinstance(audience, str) or not 1 <= len(audience) <= 200):
        raise InvalidPolicyError("token_audience must be a string of 1 to 200 characters")


class Policy(Aggregate):
    """An organisation's rules; its id derives from the organisation's, one policy each."""

    class Created(Aggregate.Created):
        org_id: UUID

    class Changed(Aggregate.Event):
        changes: dict[str, Any]
        by: str
        at: datetime

    @staticmethod
    def create_id(org_id: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"tessera:policy:{org_id}")

    @event(Created)
    def __init__(self, org_id: UUID) -> None:
        self.org_id = org_id
        self.settings: dict[str, Any] = {**DEFAULTS}

    @classmethod
    def default_for(cls, org_id: UUID) -> Policy:
        return cls(org_id=org_id)

    def change(self, changes: dict[str, Any], *, by: str, at: datetime) -> None:
        validate_settings(changes)
        merged = {**self.settings, **changes}
        if merged["free_attempts"] > merged["max_failed_attempts"]:
            raise InvalidPolicyError("free_attempts cannot exceed max_failed_attempts")
        effective = {k: v for k, v in changes.items() if self.settings.get(k) != v}
        if effective:
            self._change(changes=effective, by=by, at=at)

    @event(Changed)
    def _change(self, changes: dict[str, Any], by: str, at: datetime) -> None:
        self.settings = {**self.settings, **changes}

    # --- decisions -----------------------------------------------------------------------

    @property
    def throttle(self) -> ThrottleRule:
        s = self.settings
        return ThrottleRule(
            free_attempts=s["free_attempts"],
            max_failures=s["max_failed_attempts"],
            max_delay_seconds=s["max_backoff_seconds"],
        )

    def allows(self, method: str) -> bool:
        return method in self.settings["allowed_methods"]

    def required_aal(self, *, operation: str | None, risk_level: str) -> int | None:
        """The AAL a login must reach, or None when the risk response is to deny it.

        Risk signals can raise the requirement but never lower it (NIST N-9).
        """
        aal: int = self.settings["login_aal"]
        if operation is not None:
            aal = max(aal, self.settings["step_up"].get(operation, aal))
        response = self.settings["risk_response"].get(risk_level, "allow")
        if response == "deny":
            return None
        if response == "step_up":
            aal = min(3, aal + 1)
        return aal
