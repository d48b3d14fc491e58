"""RFC 4226 HOTP and RFC 6238 TOTP with pyotp; otpauth:// URIs and QR codes with segno."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
from datetime import datetime
from urllib.parse import quote, urlencode

import pyotp
import segno

from application.ports import OtpParameters

DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def _b32(secret: bytes) -> str:
    return base64.b32encode(secret).decode("ascii")


class PyOtpVerifier:
    """Finds which time step or counter a code belongs to, comparing in constant time.

    Every candidate in the window is computed and compared, whatever matched earlier, so
    the time taken does not depend on where (or whether) the code matched.
    """

    def code_at(self, secret: bytes, moving_factor: int, *, params: OtpParameters) -> str:
        otp = pyotp.HOTP(_b32(secret), digits=params.digits, digest=DIGESTS[params.algorithm])
        return str(otp.at(moving_factor))

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
        if len(code) != params.digits:
            return None
        if params.method == "totp":
            current = int(at.timestamp()) // params.period
            candidates = range(max(earliest, current - window), current + window + 1)
        else:
            candidates = range(earliest, earliest + window + 1)
        otp = pyotp.HOTP(_b32(secret), digits=params.digits, digest=DIGESTS[params.algorithm])
        expected = code.encode("ascii")
        found: int | None = None
        for moving_factor in candidates:
            if hmac.compare_digest(otp.at(moving_factor).encode("ascii"), expected) and (
                found is None
            ):
                found = moving_factor
        return found


class SegnoProvisioner:
    """Key Uri Format URIs (issuer in label and parameter) and SVG QR codes."""

    def uri(self, secret: bytes, *, params: OtpParameters, issuer: str, account: str) -> str:
        # Neither label part may contain a colon (Key Uri Format); drop any the names have.
        issuer_clean = issuer.replace(":", " ").strip()
        account_clean = account.replace(":", " ").strip()
        label = quote(f"{issuer_clean}:{account_clean}", safe=":@")
        query: dict[str, str | int] = {
            "secret": _b32(secret).rstrip("="),
            "issuer": issuer_clean,
            "algorithm": params.algorithm,
            "digits": params.digits,
        }
        if params.method == "totp":
            query["period"] = params.period
        else:
            query["counter"] = 0
        return f"otpauth://{params.method}/{label}?{urlencode(query, quote_via=quote)}"

    def qr_svg(self, uri: str) -> str:
        buffer = io.BytesIO()
        segno.make(uri, error="m").save(
            buffer,
            kind="svg",
            scale=4,
            xmldecl=False,
            svgns=True,
            title="Scan with your authenticator app",
        )
        return buffer.getvalue().decode("utf-8")
