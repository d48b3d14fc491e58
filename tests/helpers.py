"""Independent code generation for tests: RFC 4226 straight from hmac, not via pyotp."""

from __future__ import annotations

import base64
import hmac
import struct
from datetime import datetime

DIGESTS = {"SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}


def b32decode(secret: str) -> bytes:
    return base64.b32decode(secret + "=" * (-len(secret) % 8))


def hotp(key: bytes, counter: int, *, digits: int = 6, algorithm: str = "SHA1") -> str:
    mac = hmac.digest(key, struct.pack(">Q", counter), DIGESTS[algorithm])
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def totp(
    key: bytes, at: datetime, *, period: int = 30, digits: int = 6, algorithm: str = "SHA1"
) -> str:
    return hotp(key, int(at.timestamp()) // period, digits=digits, algorithm=algorithm)
