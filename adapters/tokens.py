"""RS256 access tokens (RFC 9068) with joserfc, and the signing keys behind the JWKS."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from adapters.keyfiles import read_json, write_private_json
from application.ports import TokenClaims

KEY_BITS = 2048  # RFC 7518 §3.3: 2048 bits or larger
RELOAD_SECONDS = 10.0


def _ts(moment: datetime) -> int:
    return int(moment.timestamp())


class SigningKeyRing:
    """RSA signing keys in a 0600 file; the newest active key signs.

    `rotate()` adds a key that becomes active only after `activate_after` seconds, so every
    process publishes it in its JWKS (they re-read the file every few seconds) before any
    token carries its kid. A key stays published until `retention` after its successor took
    over, so no token signed with it outlives it.
    """

    def __init__(self, path: Path, *, retention: timedelta, pem: str | None = None) -> None:
        self._path = path
        self._retention = retention
        self._fixed_pem = pem
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._entries: list[dict[str, Any]] = []

        self._keys: dict[str, RSAKey] = {}
        self._reload(force=True)

    def _reload(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._loaded_at < RELOAD_SECONDS:
            return
        with self._lock:
            if self._fixed_pem:
                entries = [
                    {
                        "kid": "env-" + RSAKey.import_key(self._fixed_pem).thumbprint()[:16],
                        "pem": self._fixed_pem,
                        "active_from": 0,
                    }
                ]
            else:
                if not self._path.exists():
                    write_private_json(self._path, {"keys": [self._new_entry(0)]})
                entries = read_json(self._path)["keys"]
            self._keys = {str(e["kid"]): self._import(e) for e in entries}
            self._entries = sorted(entries, key=lambda e: e["active_from"])
            self._loaded_at = time.monotonic()

    def _import(self, entry: dict[str, Any]) -> RSAKey:
        kid = str(entry["kid"])
        existing = self._keys.get(kid)
        if existing is not None:
            return existing
        return RSAKey.import_key(
            str(entry["pem"]), parameters={"kid": kid, "use": "sig", "alg": "RS256"}
        )

    @staticmethod
    def _new_entry(active_from: int) -> dict[str, Any]:
        key = RSAKey.generate_key(KEY_BITS, private=True)
        kid = f"{time.strftime('%Y%m%d')}-{secrets.token_hex(4)}"
        return {
            "kid": kid,
            "pem": key.as_pem(private=True).decode("ascii"),
            "active_from": active_from,
        }

    def active(self, now: datetime) -> RSAKey:
        self._reload()
        live = [e for e in self._entries if e["active_from"] <= _ts(now)]
        return self._keys[(live or self._entries)[-1]["kid"]]

    def published(self, now: datetime) -> list[RSAKey]:
        """Keys a verifier may meet: the active one, the coming ones, and retiring ones."""
        self._reload()
        keys, stamp = [], _ts(now)
        for index, entry in enumerate(self._entries):
            successor = self._entries[index + 1] if index + 1 < len(self._entries) else None
            retired_at = successor["active_from"] if successor else None
            if (
                retired_at is None
                or retired_at > stamp
                or (stamp - retired_at < self._retention.total_seconds())
            ):
                keys.append(self._keys[entry["kid"]])
        return list(reversed(keys))

    def rotate(self, *, now: datetime, activate_after: int = 120) -> str:
        if self._fixed_pem:
            raise ValueError("a signing key given by TESSERA_SIGNING_KEY is rotated by changing it")
        self._reload(force=True)
        cutoff = _ts(now) - int(self._retention.total_seconds())
        kept = [
            e
            for i, e in enumerate(self._entries)
            if i + 1 == len(self._entries) or self._entries[i + 1]["active_from"] > cutoff
        ]
        entry = self._new_entry(_ts(now) + activate_after)
        write_private_json(self._path, {"keys": [*kept, entry]})
        self._reload(force=True)
        return str(entry["kid"])


class JoseTokenIssuer:
    """The TokenIssuer port: RS256 JWTs with `typ: at+jwt` and a `kid` header."""

    def __init__(self, ring: SigningKeyRing, *, issuer: str) -> None:
        self._ring = ring
        self.issuer = issuer

    def issue(self, claims: TokenClaims) -> str:
        key = self._ring.active(claims.issued_at)
        header = {"alg": "RS256", "typ": "at+jwt", "kid": key.kid}
        payload = {
            "iss": self.issuer,
            "sub": claims.subject,
            "aud": claims.audience,
            "client_id": claims.client_id,
            "org_id": str(claims.org_id),
            "iat": _ts(claims.issued_at),
            "exp": _ts(claims.expires_at),
            "auth_time": _ts(claims.auth_time),
            "jti": claims.token_id,
            "acr": claims.acr,
            "amr": claims.amr,
        }
        return jwt.encode(header, payload, key, algorithms=["RS256"])

    def jwks(self, now: datetime | None = None) -> dict[str, Any]:
        keys = self._ring.published(now or datetime.now(UTC))
        return dict(KeySet(list(keys)).as_dict(private=False))
