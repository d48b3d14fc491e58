"""The FIDO metadata BLOB that every process uses, installed by `tessera mds load`."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

from adapters.mds import EmptyMetadata, MetadataError, load_metadata
from application.ports import AuthenticatorInfo, AuthenticatorMetadata

#: How often a process looks for a newer installed BLOB.
RECHECK_SECONDS = 5.0
log = logging.getLogger("tessera.mds")


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
        self._reloading = False

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
            self._loaded, self._mtime = fresh, self._installed_mtime()
        return fresh

    def prime(self) -> None:
        """Load the installed BLOB now (at start-up), not in the first ceremony's request."""
        self._checked = 0.0
        self._current()

    def _installed_mtime(self) -> float | None:
        if self._root_path is None:
            return None
        try:
            return self._blob_path.stat().st_mtime
        except FileNotFoundError:
            return None

    def _current(self) -> AuthenticatorMetadata:
        now = time.monotonic()
        if now - self._checked < RECHECK_SECONDS:
            return self._loaded
        with self._lock:
            self._checked = now
            mtime = self._installed_mtime()
            if mtime is None or mtime == self._mtime or self._reloading:
                return self._loaded
            if self._mtime is None:
                # nothing loaded yet: load before judging any attestation with it
                self._loaded, self._mtime = self._load(), mtime
                return self._loaded
            self._reloading = True
        # a newer BLOB (another process ran `tessera mds load`): parsing thousands of entries
        # takes seconds, so requests keep the previous BLOB until the new one is ready
        threading.Thread(target=self._reload, args=(mtime,), daemon=True).start()
        return self._loaded

    def _load(self) -> AuthenticatorMetadata:
        assert self._root_path is not None
        return load_metadata(self._blob_path, self._root_path)

    def _reload(self, mtime: float) -> None:
        try:
            fresh: AuthenticatorMetadata | None = self._load()
        except (MetadataError, OSError):
            log.exception("the installed metadata BLOB could not be loaded; keeping the previous")
            fresh = None
        with self._lock:
            if fresh is not None:
                self._loaded, self._mtime = fresh, mtime
            self._reloading = False
