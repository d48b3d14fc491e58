"""The FIDO metadata BLOB that every process uses, installed by `tessera mds load`."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

from adapters.mds import EmptyMetadata, MetadataError, load_metadata
from application.ports import AuthenticatorInfo, AuthenticatorMetadata

#: How often a process looks for a newer installed BLOB.
RECHECK_SECONDS = 5.0


class StoredMetadata:
    """`AuthenticatorMetadata` read from the installed BLOB file, reloaded when it changes.

    Without a configured root certificate or an installed BLOB it knows no authenticator, so
    nothing counts as attested (and `none` attestation still registers where the policy allows).
    """

    def __init__(self, blob_path: Path, root_path: Path | None) -> None:
        self._blob_path = blob_path
        self._root_path = root_path
        self._lock = threading.Lock()
        self._loaded: AuthenticatorMetadata = EmptyMetadata()
        self._mtime: float | None = None
        self._checked = 0.0

    @property
    def serial(self) -> int:
        return self._current().serial

    def lookup(self, aaguid: str) -> AuthenticatorInfo | None:
        return self._current().lookup(aaguid)

    def install(self, source: Path) -> AuthenticatorMetadata:
        """Verify `source` against the root, refuse one older than the installed BLOB, and
        install it atomically for every process."""
        if self._root_path is None:
            raise MetadataError("set TESSERA_MDS_ROOT to the metadata service's root certificate")
        fresh = load_metadata(source, self._root_path)
        current = self._current()
        if fresh.serial < current.serial:
            raise MetadataError(
                f"BLOB {fresh.serial} is older than the installed BLOB {current.serial}"
            )
        self._blob_path.parent.mkdir(parents=True, exist_ok=True)
        staging = self._blob_path.with_suffix(".tmp")
        shutil.copyfile(source, staging)
        os.replace(staging, self._blob_path)
        with self._lock:
            self._loaded, self._mtime, self._checked = fresh, None, 0.0
        return fresh

    def _current(self) -> AuthenticatorMetadata:
        now = time.monotonic()
        if now - self._checked < RECHECK_SECONDS:
            return self._loaded
        with self._lock:
            self._checked = now
            if self._root_path is None:
                return self._loaded
            try:
                mtime = self._blob_path.stat().st_mtime
            except FileNotFoundError:
                return self._loaded
            if mtime != self._mtime:
                self._loaded = load_metadata(self._blob_path, self._root_path)
                self._mtime = mtime
            return self._loaded
