"""After enrolments, a raw dump of the database holds no shared secret in any form."""

from __future__ import annotations

import base64
from pathlib import Path

import psycopg
import pytest
from litestar.testing import TestClient

from tests.conftest import PG_URL
from tests.helpers import b32decode


def _enrol_many(client: TestClient, headers: dict[str, str]) -> list[bytes]:  # type: ignore[type-arg]
    secrets = []
    for n, algorithm in enumerate(["SHA1", "SHA256", "SHA512", "SHA1"]):
        body = client.post(
            f"/v1/users/user{n}/enrolments",
            headers=headers,
            json={"method": "totp" if n % 2 else "hotp", "algorithm": algorithm},
        ).json()
        secrets.append(b32decode(body["secret"]))
    return secrets


def _forms(secret: bytes) -> list[bytes]:
    b32 = base64.b32encode(secret)
    return [
        secret,
        b32,
        b32.rstrip(b"="),
        b32.lower(),
        secret.hex().encode(),
        base64.b64encode(secret),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
    ]


def _dump(store_url: str, tmp_path: Path) -> bytes:
    """Every byte of the SQLite files, or every row of every table of the PostgreSQL schema."""
    if store_url.startswith("sqlite"):
        return b"".join(p.read_bytes() for p in tmp_path.glob("tessera.db*"))
    schema = store_url.split("schema=")[1]
    dump = b""
    with psycopg.connect(PG_URL) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,),
        ).fetchall()
        assert tables
        for (table,) in tables:
            for row in conn.execute(f'SELECT * FROM "{schema}"."{table}"'):
                dump += repr(row).encode() + b"".join(
                    bytes(v) for v in row if isinstance(v, bytes | memoryview)
                )
    return dump


def test_no_secret_appears_in_the_database(client, headers, store_url: str, tmp_path: Path) -> None:
    secrets = _enrol_many(client, headers)
    dump = _dump(store_url, tmp_path)
    assert len(dump) > 1000
    for secret in secrets:
        for form in _forms(secret):
            assert form not in dump


def test_no_phone_number_or_email_address_appears_in_the_database(
    client, headers, store_url: str, tmp_path: Path
) -> None:
    """Destinations are sealed under the user's data key (crypto-shredded with the user);
    events, counters and read models hold only masked forms and keyed hashes."""
    for user, body in (
        ("alice", {"method": "sms", "phone_number": "+447400123456"}),
        ("bob", {"method": "voice", "phone_number": "+4930901820"}),
        ("carol", {"method": "email", "email": "carol.secret@example.org"}),
    ):
        response = client.post(f"/v1/users/{user}/enrolments", headers=headers, json=body)
        assert response.status_code == 201, response.text
    dump = _dump(store_url, tmp_path)
    for needle in (b"7400123456", b"4930901820", b"30901820", b"carol.secret", b"example.org"):
        assert needle not in dump, needle
    assert b"3456" in dump  # the masked forms are there


@pytest.mark.parametrize("path", ["kek.json", "signing.json"])
def test_key_files_are_private_to_their_owner(client, headers, tmp_path: Path, path: str) -> None:
    _enrol_many(client, headers)
    client.get("/.well-known/jwks.json")
    assert (tmp_path / "keys" / path).stat().st_mode & 0o077 == 0
