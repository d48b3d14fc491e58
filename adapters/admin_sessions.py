"""Admin sessions: in the database (shared by every server process, kept across restarts), or
in this process's memory (tests, `memory://`).

Only the SHA-256 of a session id is stored (`AdminSessions` hashes it). Idle and absolute
expiry are part of the query that resumes a session, so an expired row is never handed out,
whatever the clocks of the processes that wrote it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from adapters.persistence import Database
from application.administrators import AdminIdentity, AdminSession, AdminSessionStore

#: Beyond this many live sessions the oldest are dropped (a bound against memory exhaustion).
MAX_SESSIONS = 10_000

_COLUMNS = "org_id, user_id, aal, amr, auth_time, csrf_token, created_at, last_seen"


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

    def touch(
        self, key: str, *, now: datetime, idle: timedelta, absolute: timedelta
    ) -> AdminSession | None:
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if session.last_seen <= now - idle or session.created_at <= now - absolute:
                del self._sessions[key]
                return None
            touched = AdminSession(session.identity, session.csrf_token, session.created_at, now)
            self._sessions[key] = touched
            return touched

    def delete(self, key: str) -> None:
        with self._lock:
            self._sessions.pop(key, None)

    def purge(self, *, now: datetime, idle: timedelta, absolute: timedelta) -> int:
        with self._lock:
            expired = [
                k
                for k, s in self._sessions.items()
                if s.last_seen <= now - idle or s.created_at <= now - absolute
            ]
            for key in expired:
                del self._sessions[key]
            return len(expired)

    def delete_for(self, org_id: UUID, user_id: str) -> int:
        with self._lock:
            keys = [
                k
                for k, s in self._sessions.items()
                if s.identity.org_id == org_id and s.identity.user_id == user_id
            ]
            for key in keys:
                del self._sessions[key]
            return len(keys)


def _micros(at: datetime) -> int:
    """A moment as integer microseconds since the epoch: the same comparisons on both stores."""
    delta = at.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _moment(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))


def _session(row: Sequence[Any]) -> AdminSession:
    org_id, user_id, aal, amr, auth_time, csrf_token, created_at, last_seen = row
    identity = AdminIdentity(
        org_id=UUID(str(org_id)),
        user_id=str(user_id),
        aal=int(aal),
        amr=tuple(str(amr).split()),
        auth_time=_moment(auth_time),
    )
    return AdminSession(identity, str(csrf_token), _moment(created_at), _moment(last_seen))


class SqlAdminSessionStore:
    """Admin sessions in a table of the database (SQLite or PostgreSQL), so that any server
    process resumes any session and a restart signs nobody out.

    The admin area sees little traffic, so each call opens its own short connection: no pool
    to size against PostgreSQL's connection limit, nothing to close.
    """

    def __init__(self, database: Database, *, create_table: bool = True) -> None:
        if database.kind not in ("sqlite", "postgres"):
            raise ValueError("SqlAdminSessionStore needs SQLite or PostgreSQL")
        self._database = database
        self._postgres = database.kind == "postgres"
        if create_table:
            self._create_table()

    def _sql(self, text: str) -> Any:
        """`text` with `{t}` the table, `{ix}` its index; `%s` marks become SQLite's `?`."""
        if self._postgres:
            from psycopg.sql import SQL, Identifier

            table = Identifier(self._database.schema, "admin_sessions")
            return SQL(text).format(t=table, ix=Identifier("admin_sessions_user"))
        return text.format(t="admin_sessions", ix="admin_sessions_user").replace("%s", "?")

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        if self._postgres:
            import psycopg

            with (
                psycopg.connect(self._database.conninfo, autocommit=True, connect_timeout=10) as c,
                c.cursor() as cursor,
            ):
                yield cursor
            return
        db = sqlite3.connect(self._database.sqlite_path, timeout=30, isolation_level=None)
        try:
            yield db.cursor()
        finally:
            db.close()

    def _create_table(self) -> None:
        statements = (
            "CREATE TABLE IF NOT EXISTS {t} (token_hash text PRIMARY KEY, org_id text NOT NULL, "
            "user_id text NOT NULL, aal integer NOT NULL, amr text NOT NULL, "
            "auth_time bigint NOT NULL, csrf_token text NOT NULL, created_at bigint NOT NULL, "
            "last_seen bigint NOT NULL)",
            "CREATE INDEX IF NOT EXISTS {ix} ON {t} (org_id, user_id)",
        )
        racing: tuple[type[Exception], ...] = ()
        if self._postgres:
            from psycopg.errors import DuplicateObject, DuplicateTable, UniqueViolation

            # another process created it at the same moment
            racing = (UniqueViolation, DuplicateTable, DuplicateObject)
        for statement in statements:
            with contextlib.suppress(*racing), self._cursor() as cursor:
                cursor.execute(self._sql(statement))

    def put(self, key: str, session: AdminSession) -> None:
        identity = session.identity
        with self._cursor() as cursor:
            cursor.execute(
                self._sql(
                    f"INSERT INTO {{t}} (token_hash, {_COLUMNS}) VALUES "  # noqa: S608
                    "(%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (token_hash) DO UPDATE SET "
                    "last_seen = excluded.last_seen"
                ),
                (
                    key,
                    str(identity.org_id),
                    identity.user_id,
                    identity.aal,
                    " ".join(identity.amr),
                    _micros(identity.auth_time),
                    session.csrf_token,
                    _micros(session.created_at),
                    _micros(session.last_seen),
                ),
            )

    def touch(
        self, key: str, *, now: datetime, idle: timedelta, absolute: timedelta
    ) -> AdminSession | None:
        """The live session under `key` with `last_seen` moved to `now`; None when there is
        none, or it has been idle for `idle` or exists for `absolute` (then it is deleted)."""
        at = _micros(now)
        with self._cursor() as cursor:
            cursor.execute(
                self._sql(
                    "UPDATE {t} SET last_seen = %s WHERE token_hash = %s "  # noqa: S608
                    f"AND last_seen > %s AND created_at > %s RETURNING {_COLUMNS}"
                ),
                (at, key, at - _micros_of(idle), at - _micros_of(absolute)),
            )
            row = cursor.fetchone()
            if row is None:
                cursor.execute(self._sql("DELETE FROM {t} WHERE token_hash = %s"), (key,))
                return None
            return _session(row)

    def delete(self, key: str) -> None:
        with self._cursor() as cursor:
            cursor.execute(self._sql("DELETE FROM {t} WHERE token_hash = %s"), (key,))

    def delete_for(self, org_id: UUID, user_id: str) -> int:
        with self._cursor() as cursor:
            cursor.execute(
                self._sql("DELETE FROM {t} WHERE org_id = %s AND user_id = %s"),
                (str(org_id), user_id),
            )
            return max(0, int(cursor.rowcount))

    def purge(self, *, now: datetime, idle: timedelta, absolute: timedelta) -> int:
        """Delete every expired session; the number deleted."""
        at = _micros(now)
        with self._cursor() as cursor:
            cursor.execute(
                self._sql("DELETE FROM {t} WHERE last_seen <= %s OR created_at <= %s"),
                (at - _micros_of(idle), at - _micros_of(absolute)),
            )
            return max(0, int(cursor.rowcount))


def _micros_of(span: timedelta) -> int:
    return (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds


def session_store_for(database: Database) -> AdminSessionStore:
    """The database's own session table (created if missing: server workers share it, and
    `serve` creates other tables before they start); in memory for `memory://`."""
    if database.kind == "memory":
        return InMemoryAdminSessionStore()
    return SqlAdminSessionStore(database)
