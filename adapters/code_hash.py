"""Keyed hashes of one-time codes: HMAC-SHA256 under a key derived from the key-encryption key."""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from adapters.vault import KeyRing
from application.ports import SecretUnavailableError


class HmacCodeHasher:
    """`kid$hex(HMAC-SHA256(HKDF(KEK[kid]), binding NUL code))`.

    A six-digit code has only a million values, so an unkeyed hash would be reversed at once;
    under a key that never leaves the key ring, a stolen event store reveals nothing. The key id
    travels with the digest, so codes issued before a `tessera keys rotate` still verify.
    """

    def __init__(self, key_ring: KeyRing) -> None:
        self._ring = key_ring

    def digest(self, code: str, *, binding: str) -> str:
        kid = self._ring.active_id
        return f"{kid}${self._mac(kid, code, binding)}"

    def matches(self, code: str, *, binding: str, digest: str) -> bool:
        kid, _, expected = digest.partition("$")
        try:
            actual = self._mac(kid, code, binding)
        except SecretUnavailableError:
            return False
        return hmac.compare_digest(actual, expected)

    def _mac(self, kid: str, code: str, binding: str) -> str:
        key = _derive(self._ring.key(kid))
        message = binding.encode() + b"\0" + code.encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()


@lru_cache(maxsize=8)
def _derive(kek: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"tessera code hash").derive(
        kek
    )
