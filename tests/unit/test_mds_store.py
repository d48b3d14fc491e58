"""The installed metadata BLOB: loaded at start-up, and a newer one installed by another
process is picked up in the background while requests keep the previous one."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

import adapters.mds_store as mds_store
from adapters.mds import MetadataError
from adapters.mds_store import StoredMetadata
from tests.softauthn import make_mds_blob, make_mds_root, mds_entry

MODEL = str(uuid.UUID("2fc0579f-8113-47ea-b116-bb5a8db9202a"))


@pytest.fixture
def signer():  # type: ignore[no-untyped-def]
    return make_mds_root("RS256")


def _blob(tmp_path: Path, signer, serial: int, status: str = "FIDO_CERTIFIED_L1") -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / f"blob-{serial}.jwt"
    entry = mds_entry(MODEL, description=f"Key v{serial}", statuses=[(status, "2026-01-01")])
    path.write_bytes(make_mds_blob([entry], serial=serial, signer=signer))
    return path


def test_another_process_picks_up_a_newer_blob_without_stalling(
    tmp_path: Path,
    signer,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    root = tmp_path / "root.pem"
    root.write_bytes(signer.root_pem)
    installer = StoredMetadata(tmp_path / "mds" / "blob.jwt", root)
    installer.install(_blob(tmp_path, signer, 1))

    server = StoredMetadata(tmp_path / "mds" / "blob.jwt", root)
    server.prime()
    assert server.serial == 1 and server.lookup(MODEL).description == "Key v1"  # type: ignore[union-attr]

    monkeypatch.setattr(mds_store, "RECHECK_SECONDS", 0.0)
    slow_load = mds_store.load_metadata

    def load_slowly(blob: Path, root_path: Path):  # type: ignore[no-untyped-def]
        time.sleep(0.3)
        return slow_load(blob, root_path)

    monkeypatch.setattr(mds_store, "load_metadata", load_slowly)
    installer.install(_blob(tmp_path, signer, 2, "REVOKED"))
    started = time.monotonic()
    assert server.serial == 1  # the previous BLOB answers while the new one loads
    assert time.monotonic() - started < 0.2
    deadline = time.monotonic() + 5
    while server.serial != 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert server.lookup(MODEL).compromised  # type: ignore[union-attr]


def test_an_older_blob_is_refused_and_without_a_root_nothing_installs(
    tmp_path: Path,
    signer,  # type: ignore[no-untyped-def]
) -> None:
    root = tmp_path / "root.pem"
    root.write_bytes(signer.root_pem)
    store = StoredMetadata(tmp_path / "mds" / "blob.jwt", root)
    store.install(_blob(tmp_path, signer, 5))
    with pytest.raises(MetadataError, match="older"):
        store.install(_blob(tmp_path, signer, 4))
    assert store.serial == 5
    rootless = StoredMetadata(tmp_path / "other" / "blob.jwt", None)
    with pytest.raises(MetadataError, match="TESSERA_MDS_ROOT"):
        rootless.install(_blob(tmp_path, signer, 6))
    assert rootless.serial == 0 and rootless.lookup(MODEL) is None
