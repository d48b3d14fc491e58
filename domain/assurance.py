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

#: RFC 8176 registered `amr` values per method; one value covers both TOTP and HOTP.
AMR_BY_METHOD: Final = {"totp": ("otp",), "hotp": ("otp",)}

OTP_METHODS: Final = frozenset({"totp", "hotp"})

#: Methods that resist phishing (NIST SP 800-63B §5.2.5: verifier-name binding). None of today's
#: methods does: a typed OTP can be relayed by a fake site. WebAuthn joins this set when it lands;
#: MFA-coverage analytics count a user's active authenticators of these methods.
PHISHING_RESISTANT_METHODS: Final[frozenset[str]] = frozenset()
KNOWN_METHODS: Final = frozenset(AMR_BY_METHOD)


def aal_for_factors(methods: list[str], *, primary_factor_verified: bool) -> int:
    """The AAL a set of verified second-layer factors reaches.

    An OTP device alone is a single-factor "something you have" (AAL1); together with a
    memorised secret that the calling application verified first, it is AAL2 (NIST N-2).
    Manual-entry codes are never phishing-resistant, so OTP never reaches AAL3 (N-5, N-6).
    """
    if not methods:
        return 0
    if primary_factor_verified:
        return 2
    return 1


def amr_for(methods: list[str]) -> list[str]:
    """The RFC 8176 `amr` array for the verified methods, in order, without repeats."""
    values: list[str] = []
    for method in methods:
        for value in AMR_BY_METHOD.get(method, ()):
            if value not in values:
                values.append(value)
    return values
