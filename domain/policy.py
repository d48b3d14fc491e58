"""Policy: what an organisation allows and what a login requires."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.assurance import AAL_VALUES, KNOWN_METHODS, RESTRICTED_METHODS
from domain.throttle import ThrottleRule

RISK_LEVELS = ("low", "medium", "high")
RISK_RESPONSES = frozenset({"allow", "step_up", "deny"})
NIST_MAX_FAILURES = 100  # SP 800-63B §3.2.2 [RL-2]


class PolicyError(Exception):
    """Base class of the errors a policy raises."""


class InvalidPolicyError(PolicyError):
    """A requested setting is outside what the standards allow."""


DEFAULTS: dict[str, Any] = {
    "allowed_methods": ["totp", "hotp", "webauthn", "sms", "voice", "email"],
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
    # "nist": `acr` is the NIST AAL URI; "openid-eap": "phrh"/"phr" when a phishing-resistant
    # (and hardware-bound) factor was verified, else the NIST AAL URI.
    "acr_format": "nist",
    # WebAuthn (see ADR 0015): which authenticators may register, and how strictly.
    "webauthn_attestation": "any",  # "any" (also `none` attestation) | "attested"
    "webauthn_aaguid_allow": [],  # empty: every AAGUID the other rules accept
    "webauthn_aaguid_deny": [],
    "webauthn_user_verification": "discouraged",  # the least an enrolment may ask for
    "webauthn_top_origins": [],  # top-level origins allowed for cross-origin (iframe) ceremonies
    "webauthn_reject_clones": True,  # refuse an assertion whose sign counter did not increase
    # SMS, voice and email codes (see ADR 0017).
    "code_ttl_seconds": 300,
    "code_max_tries": 3,  # wrong entries one code survives
    "code_resend_seconds": 30,  # cool-down before another code may be sent
    "restricted_max_aal": 2,  # NIST "restricted" SMS/voice count only up to this AAL (1 or 2)
    "phone_refuse_voip": True,
    "phone_countries": [],  # ISO 3166 regions codes may go to; empty: every region
    "send_caps": {"number": 5, "ip": 20, "organisation": 1000, "country": 200},  # per hour
    "usual_countries": [],  # regions where sends are expected; empty: no breaker
    "unusual_burst": 10,  # sends per hour outside usual_countries that trip the breaker
}

SEND_CAP_KEYS = ("number", "ip", "organisation", "country")
_REGION = re.compile(r"[A-Z]{2}")


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

    def _choice(name: str, values: tuple[str, ...]) -> None:
        if name in settings and settings[name] not in values:
            raise InvalidPolicyError(f"{name} must be one of {list(values)}")

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
    _choice("acr_format", ("nist", "openid-eap"))
    _choice("webauthn_attestation", ("any", "attested"))
    _choice("webauthn_user_verification", ("discouraged", "preferred", "required"))
    for name in ("webauthn_aaguid_allow", "webauthn_aaguid_deny"):
        if name in settings and not _aaguids(settings[name]):
            raise InvalidPolicyError(f"{name} must list AAGUIDs (UUID strings, at most 1000)")
    if "webauthn_top_origins" in settings and not _origins(settings["webauthn_top_origins"]):
        raise InvalidPolicyError("webauthn_top_origins must list origins like https://example.com")
    _int("code_ttl_seconds", 60, 900)  # NIST B-6: the OOB secret is valid 10 min at most
    _int("code_max_tries", 1, 10)
    _int("code_resend_seconds", 0, 600)
    _int("restricted_max_aal", 1, 2)
    _int("unusual_burst", 1, 100_000)
    if "phone_refuse_voip" in settings and not isinstance(settings["phone_refuse_voip"], bool):
        raise InvalidPolicyError("phone_refuse_voip must be true or false")
    for name in ("phone_countries", "usual_countries"):
        value = settings.get(name)
        if name in settings and not (
            isinstance(value, list)
            and len(value) <= 300
            and all(isinstance(v, str) and _REGION.fullmatch(v) for v in value)
        ):
            raise InvalidPolicyError(f"{name} must list ISO 3166 region codes like 'GB'")
    if "send_caps" in settings:
        caps = settings["send_caps"]
        if not isinstance(caps, dict) or not all(
            k in SEND_CAP_KEYS and isinstance(v, int) and not isinstance(v, bool) and v >= 1
            for k, v in caps.items()
        ):
            raise InvalidPolicyError(f"send_caps maps {list(SEND_CAP_KEYS)} to hourly limits")
    if "webauthn_reject_clones" in settings and not isinstance(
        settings["webauthn_reject_clones"], bool
    ):
        raise InvalidPolicyError("webauthn_reject_clones must be true or false")
    audience = settings.get("token_audience")
    if audience is not None and (not isinstance(audience, str) or not 1 <= len(audience) <= 200):
        raise InvalidPolicyError("token_audience must be a string of 1 to 200 characters")


_AAGUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?")


def _aaguids(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) <= 1000
        and all(isinstance(v, str) and _AAGUID.fullmatch(v) for v in value)
    )


def _origins(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) <= 100
        and all(isinstance(v, str) and _ORIGIN.fullmatch(v) for v in value)
    )


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
        if "send_caps" in changes:  # a partial change keeps the other caps
            changes = {
                **changes,
                "send_caps": {**self.settings["send_caps"], **changes["send_caps"]},
            }
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

    def counts_at(self, method: str, required_aal: int) -> bool:
        """Whether a factor of `method` may serve a login that needs `required_aal`: the
        restricted methods (SMS, voice) only up to `restricted_max_aal`."""
        return (
            method not in RESTRICTED_METHODS or required_aal <= self.settings["restricted_max_aal"]
        )

    def admits_destination(self, *, region: str | None, number_type: str | None) -> str | None:
        """Why the policy refuses a phone number, or None."""
        countries = self.settings["phone_countries"]
        if countries and region not in countries:
            return "the organisation's policy does not send codes to this country"
        if number_type == "voip" and self.settings["phone_refuse_voip"]:
            return "the organisation's policy does not accept VoIP numbers"
        return None

    def admits_authenticator(self, *, aaguid: str, attested: bool) -> str | None:
        """Why the policy refuses a WebAuthn authenticator model, or None when it admits it."""
        s = self.settings
        if aaguid in s["webauthn_aaguid_deny"]:
            return "this authenticator model is not allowed by the organisation's policy"
        if s["webauthn_aaguid_allow"] and aaguid not in s["webauthn_aaguid_allow"]:
            return "the organisation's policy allows only listed authenticator models"
        if s["webauthn_attestation"] == "attested" and not attested:
            return "the organisation's policy requires an attested authenticator"
        return None

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
