"""Envelope encryption with AES-256-GCM: key-encryption keys wrap one data key per owner.

A secret is sealed with its owner's data key; the data key is stored wrapped by a
key-encryption key (KEK) whose id travels with the wrapped key. Erasing the owner's data key
crypto-shreds every secret sealed for them, even copies inside immutable events.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.keyfiles import read_json, write_private_json
from application.ports import SecretUnavailableError

SEALED_PREFIX = "tsv1."
NONCE_BYTES = 12
DATA_KEY_CACHE_SECONDS = 30.0


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _as_bytes(value: object) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError("a wrapped key column holds bytes")
    return bytes(value)


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class KeyRing:
    """Key-encryption keys by id; the active one wraps, every one unwraps.

    Loaded from `TESSERA_KEK` (`id:base64,...`, first active) or from a 0600 JSON file that
    `tessera keys rotate` extends. An unknown id makes it re-read the file once, so a running
    process picks up a rotation done by another without restarting.
    """

    def __init__(self, *, path: Path | None = None, environment_value: str | None = None) -> None:
        self._path = path
        self._environment_value = environment_value
        self._lock = threading.Lock()
        self.active_id, self._keys = self._load()

    def _load(self) -> tuple[str, dict[str, bytes]]:
        if self._environment_value:
            pairs = [item.split(":", 1) for item in self._environment_value.split(",") if item]
            keys = {kid.strip(): _b64d(value.strip()) for kid, value in pairs}
            if not keys or any(len(k) != 32 for k in keys.values()):
                raise ValueError("TESSERA_KEK needs id:base64 pairs of 32-byte keys")
            return pairs[0][0].strip(), keys
        if self._path is None:
            raise ValueError("a key ring needs a file or an environment value")
        if not self._path.exists():
            self._write(*self._generate({}))
        content = read_json(self._path)
        return content["active"], {kid: _b64d(v) for kid, v in content["keys"].items()}

    @staticmethod
    def _generate(keys: dict[str, bytes]) -> tuple[str, dict[str, bytes]]:
        kid = f"kek-{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"
        return kid, {**keys, kid: AESGCM.generate_key(bit_length=256)}

    def _write(self, active: str, keys: dict[str, bytes]) -> None:
        assert self._path is not None
        write_private_json(
            self._path, {"active": active, "keys": {k: _b64e(v) for k, v in keys.items()}}
        )

    def key(self, kid: str) -> bytes:
        if kid not in self._keys and self._path is not None and not self._environment_value:
            with self._lock:
                self.active_id, self._keys = self._load()
        try:
            return self._keys[kid]
        except KeyError:
            raise SecretUnavailableError(f"unknown key-encryption key {kid!r}") from None

    @property
    def active_key(self) -> bytes:
        return self._keys[self.active_id]

    def add_new_active(self) -> str:
        """Generate a new KEK, make it active and persist the ring (old keys kept)."""
        if self._environment_value:
            raise ValueError("keys given by TESSERA_KEK are rotated by changing that variable")
        with self._lock:
            self.active_id, self._keys = self._generate(self._keys)
            self._write(self.active_id, self._keys)
        return self.active_id


class DataKeyStore(Protocol):
    def get(self, owner: UUID) -> tuple[str, bytes] | None: ...
    def insert_if_absent(self, owner: UUID, kek_id: str, wrapped: bytes) -> None: ...
    def replace(self, owner: UUID, kek_id: str, wrapped: bytes, *, old_kek_id: str) -> bool: ...
    def delete(self, owner: UUID) -> None: ...
    def owners_not_under(self, kek_id: str, limit: int) -> list[UUID]: ...


class EnvelopeVault:
    """The SecretVault port: AES-256-GCM secrets under per-owner data keys wrapped by a KEK."""

    def __init__(
        self, ring: KeyRing, store: DataKeyStore, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ring = ring
        self._store = store
        self._clock = clock
        self._cache: dict[UUID, tuple[float, bytes]] = {}

    # --- the port -------------------------------------------------------------------------

    def seal(self, owner: UUID, secret: bytes) -> str:
        data_key = self._data_key(owner, create=True)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, secret, owner.bytes)
        return SEALED_PREFIX + _b64e(nonce + ciphertext)

    def open(self, owner: UUID, sealed: str) -> bytes:
        if not sealed.startswith(SEALED_PREFIX):
            raise SecretUnavailableError("not a sealed secret")
        blob = _b64d(sealed[len(SEALED_PREFIX) :])
        data_key = self._data_key(owner, create=False)
        try:
            return AESGCM(data_key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], owner.bytes)
        except InvalidTag:
            raise SecretUnavailableError("the secret was sealed under an erased data key") from None

    def shred(self, owner: UUID) -> None:
        self._store.delete(owner)
        self._cache.pop(owner, None)

    # --- key rotation ---------------------------------------------------------------------

    def rewrap_all(self, *, batch: int = 500) -> int:
        """Re-wrap every data key under the active KEK; safe to run while serving."""
        count = 0
        target = self._ring.active_id
        while owners := self._store.owners_not_under(target, batch):
            for owner in owners:
                row = self._store.get(owner)
                if row is None:
                    continue
                data_key = self._unwrap(owner, *row)
                kek_id, wrapped = self._wrap(owner, data_key)
                if self._store.replace(owner, kek_id, wrapped, old_kek_id=row[0]):
                    count += 1
        return count

    # --- internals ------------------------------------------------------------------------

    def _data_key(self, owner: UUID, *, create: bool) -> bytes:
        cached = self._cache.get(owner)
        now = self._clock()
        if cached is not None and now - cached[0] < DATA_KEY_CACHE_SECONDS:
            return cached[1]
        row = self._store.get(owner)
        if row is None:
            if not create:
                raise SecretUnavailableError("the owner's data key was erased")
            self._store.insert_if_absent(owner, *self._wrap(owner, AESGCM.generate_key(256)))
            row = self._store.get(owner)
            assert row is not None
        data_key = self._unwrap(owner, *row)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[owner] = (now, data_key)
        return data_key

    def _wrap(self, owner: UUID, data_key: bytes) -> tuple[str, bytes]:
        kek_id = self._ring.active_id
        nonce = os.urandom(NONCE_BYTES)
        aad = owner.bytes + kek_id.encode("utf-8")
        return kek_id, nonce + AESGCM(self._ring.active_key).encrypt(nonce, data_key, aad)

    def _unwrap(self, owner: UUID, kek_id: str, wrapped: bytes) -> bytes:
        aad = owner.bytes + kek_id.encode("utf-8")
        try:
            return AESGCM(self._ring.key(kek_id)).decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad
            )
        except InvalidTag:
            raise SecretUnavailableError("a data key failed to unwrap") from None


class InMemoryDataKeyStore:
    def __init__(self) -> None:
        self._rows: dict[UUID, tuple[str, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, owner: UUID) -> tuple[str, bytes] | None:
        return self._rows.get(owner)

    def insert_if_absent(self, owner: UUID, kek_id: str, wrapped: bytes) -> None:
        with self._lock:
            self._rows.setdefault(owner, (kek_id, wrapped))

    def replace(self, owner: UUID, kek_id: str, wrapped: bytes, *, old_kek_id: str) -> bool:
        with self._lock:
            if self._rows.get(owner, ("",))[0] != old_kek_id:
                return False
            self._rows[owner] = (kek_id, wrapped)
            return True

    def delete(self, owner: UUID) -> None:
        with self._lock:
            self._rows.pop(owner, None)

    def owners_not_under(self, kek_id: str, limit: int) -> list[UUID]:
        return [o for o, (k, _) in self._rows.items() if k != kek_id][:limit]


class SqliteDataKeyStore:
    """Data keys in the embedded SQLite file, beside the events but in a mutable table."""

    def __init__(self, path: str) -> None:
        self._path = path
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS tessera_data_keys (owner TEXT PRIMARY KEY, "
                "kek_id TEXT NOT NULL, wrapped BLOB NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def _run(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        db = self._connect()
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def get(self, owner: UUID) -> tuple[str, bytes] | None:
        rows = self._run(
            "SELECT kek_id, wrapped FROM tessera_data_keys WHERE owner = ?", (str(owner),)
        )
        return (str(rows[0][0]), _as_bytes(rows[0][1])) if rows else None

    def insert_if_absent(self, owner: UUID, kek_id: str, wrapped: bytes) -> None:
        self._run(
            "INSERT OR IGNORE INTO tessera_data_keys VALUES (?, ?, ?)",
            (str(owner), kek_id, wrapped),
        )

    def replace(self, owner: UUID, kek_id: str, wrapped: bytes, *, old_kek_id: str) -> bool:
        db = self._connect()
        try:
            cursor = db.execute(
                "UPDATE tessera_data_keys SET kek_id = ?, wrapped = ? WHERE owner = ? "
                "AND kek_id = ?",
                (kek_id, wrapped, str(owner), old_kek_id),
            )
            return cursor.rowcount == 1
        finally:
            db.close()

    def delete(self, owner: UUID) -> None:
        self._run("DELETE FROM tessera_data_keys WHERE owner = ?", (str(owner),))

    def owners_not_under(self, kek_id: str, limit: int) -> list[UUID]:
        rows = self._run(
            "SELECT owner FROM tessera_data_keys WHERE kek_id <> ? LIMIT ?", (kek_id, limit)
        )
        return [UUID(str(r[0])) for r in rows]


class PostgresDataKeyStore:
    """Data keys in PostgreSQL; a small pool, since a cached key spares most lookups."""

    def __init__(self, conninfo: str, schema: str) -> None:
        from psycopg import sql
        from psycopg_pool import ConnectionPool

        self._table = sql.Identifier(schema, "tessera_data_keys")
        self._sql = sql
        self._pool = ConnectionPool(
            conninfo, min_size=1, max_size=4, open=True, kwargs={"autocommit": True}
        )
        from psycopg.errors import UniqueViolation

        # another process may create it at the same moment (a pg_type unique violation)
        with contextlib.suppress(UniqueViolation):
            self._execute(
                "CREATE TABLE IF NOT EXISTS {t} (owner uuid PRIMARY KEY, kek_id text NOT NULL, "
                "wrapped bytea NOT NULL)",
                (),
            )

    def _execute(
        self, query: str, params: tuple[object, ...]
    ) -> tuple[list[tuple[object, ...]], int]:
        statement = self._sql.SQL(query).format(t=self._table)
        with self._pool.connection() as conn, conn.cursor() as cursor:
            cursor.execute(statement, params)
            rows = cursor.fetchall() if cursor.description else []
            return rows, cursor.rowcount

    def get(self, owner: UUID) -> tuple[str, bytes] | None:
        rows, _ = self._execute("SELECT kek_id, wrapped FROM {t} WHERE owner = %s", (owner,))
        return (str(rows[0][0]), _as_bytes(rows[0][1])) if rows else None

    def insert_if_absent(self, owner: UUID, kek_id: str, wrapped: bytes) -> None:
        self._execute(
            "INSERT INTO {t} VALUES (%s, %s, %s) ON CONFLICT (owner) DO NOTHING",
            (owner, kek_id, wrapped),
        )

    def replace(self, owner: UUID, kek_id: str, wrapped: bytes, *, old_kek_id: str) -> bool:
        _, count = self._execute(
            "UPDATE {t} SET kek_id = %s, wrapped = %s WHERE owner = %s AND kek_id = %s",
            (kek_id, wrapped, owner, old_kek_id),
        )
        return count == 1

    def delete(self, owner: UUID) -> None:
        self._execute("DELETE FROM {t} WHERE owner = %s", (owner,))

    def owners_not_under(self, kek_id: str, limit: int) -> list[UUID]:
        rows, _ = self._execute(
            "SELECT owner FROM {t} WHERE kek_id <> %s LIMIT %s", (kek_id, limit)
        )
        return [r[0] for r in rows]  # type: ignore[misc]

    def close(self) -> None:
        self._pool.close()
