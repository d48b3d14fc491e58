"""Assurance levels (NIST SP 800-63B) and RFC 8176 method references for each factor."""

from __future__ import annotations

from typing import Final

AAL_VALUES: Final = (1, 2, 3)

#: `acr` values published in tokens: the NIST assurance level reached (see ADR 0005).
ACR_BY_AAL: Final = {
    1: "http://idmanagement.gov/ns/assurance/aal/1",
    2: "http://idmanagement.gov/ns/assurance/aal/2",
    3: "http://idmanagement.gov/ns/assurance/aal/3",
}

#: RFC 8176 registered `amr` values per method; one value covers both TOTP and HOTP. WebAuthn's
#: values depend on the credential and the assertion (`webauthn_amr`); see ADR 0015.
AMR_BY_METHOD: Final = {
    "totp": ("otp",),
    "hotp": ("otp",),
    "sms": ("sms",),
    "voice": ("tel",),
    "email": ("otp",),
    "webauthn": (),
}

OTP_METHODS: Final = frozenset({"totp", "hotp"})
OUT_OF_BAND_METHODS: Final = frozenset({"sms", "voice", "email"})
#: NIST SP 800-63B §3.1.3.3: the PSTN is a "restricted" authenticator.
RESTRICTED_METHODS: Final = frozenset({"sms", "voice"})

#: Methods that resist phishing (NIST SP 800-63B §5.2.5: verifier-name binding): only WebAuthn,
#: whose signature covers the origin; a typed code can be relayed by a fake site. MFA-coverage
#: analytics count a user's active authenticators of these methods.
PHISHING_RESISTANT_METHODS: Final[frozenset[str]] = frozenset({"webauthn"})
KNOWN_METHODS: Final = frozenset(AMR_BY_METHOD)

#: OpenID Connect EAP ACR values (phishing-resistant; and hardware-bound too).
ACR_PHISHING_RESISTANT: Final = "phr"
ACR_PHISHING_RESISTANT_HARDWARE: Final = "phrh"


def webauthn_amr(*, hardware_bound: bool, user_verified: bool) -> list[str]:
    """RFC 8176 values for one WebAuthn assertion.

    `hwk`/`swk`: proof of possession of a hardware-bound or a synced (backup-eligible) key;
    `user`: the user-presence test every assertion carries; `mfa` when user verification
    added a second factor. `pin`, `fpt` and `face` are never claimed: the UV flag does not say
    which modality the authenticator used.
    """
    values = ["hwk" if hardware_bound else "swk", "user"]
    if user_verified:
        values.append("mfa")
    return values


def aal_for_factors(methods: list[str], *, primary_factor_verified: bool) -> int:
    """The AAL a set of verified second-layer factors reaches.

    An OTP device alone is a single-factor "something you have" (AAL1); together with a
    memorised secret that the calling application verified first, it is AAL2 (NIST N-2).
    Manual-entry codes are never phishing-resistant, so OTP never reaches AAL3 (N-5, N-6).
    SMS and voice codes count like OTP (restricted; the policy may cap them lower). An email
    code proves no specific device (§5.1.3.1), so it stays AAL1 even after a password.
    """
    if not methods:
        return 0
    if primary_factor_verified and set(methods) - {"email"}:
        return 2
    return 1


def amr_for(methods: list[str], extra: list[list[str]] | None = None) -> list[str]:
    """The RFC 8176 `amr` array for the verified methods, in order, without repeats; `extra`
    holds the per-factor values of factors whose values depend on the assertion."""
    values: list[str] = []
    for group in [list(AMR_BY_METHOD.get(m, ())) for m in methods] + (extra or []):
        for value in group:
            if value not in values:
                values.append(value)
    return values
