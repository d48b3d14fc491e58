"""Admin sessions in this process's memory (ADR 12: one server process serves the admin area)."""

from __future__ import annotations

import threading

from application.administrators import AdminSession

#: Beyond this many live sessions the oldest are dropped (a bound against memory exhaustion).
MAX_SESSIONS = 10_000


class InMemoryAdminSessionStore:
    """Sessions keyed by the hash of their id; lost on restart, which signs everyone out."""

    def __init__(self) -> None:
        self._sessions: dict[str, AdminSession] = {}
        self._lock = threading.Lock()

    def put(self, key: str, session: AdminSession) -> None:
        with self._lock:
            self._sessions.pop(key, None)
            self._sessions[key] = session
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))

    def get(self, key: str) -> AdminSession | None:
        with self._lock:
            return self._sessions.get(key)

    def delete(self, key: str) -> None:
        with self._lock:
            self._sessions.pop(key, None)
