"""The real clock, identifiers and CSPRNG."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class RandomIds:
    def new_id(self) -> uuid.UUID:
        return uuid.uuid4()


class CsprngSecrets:
    """`secrets` module randomness; API keys carry a prefix so leaked ones are recognisable."""

    def otp_secret(self, size: int) -> bytes:
        return secrets.token_bytes(size)

    def api_key(self) -> str:
        return "tsk_" + secrets.token_urlsafe(32)

    def token(self) -> str:
        return secrets.token_urlsafe(32)

    def challenge(self) -> bytes:
        return secrets.token_bytes(32)
