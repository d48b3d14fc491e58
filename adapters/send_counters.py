"""`SendCounters`: fixed-window counters for toll-fraud caps, shared by every process through the
database (one upserted row per key and window), or in memory for one process."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from adapters.persistence import Database

TABLE = "tessera_send_counters"
PRUNE_INTERVAL_SECONDS = 60


def window_start(at: datetime, window_seconds: int) -> int:
    """The Unix second the fixed window containing `at` starts at (windows align to the epoch)."""
    if window_seconds < 1:
        raise ValueError("window_seconds must be at least 1")
    seconds = int(at.timestamp())
    return seconds - seconds % window_seconds


class InMemorySendCounters:
    """One process's counters (tests, `memory://`); windows that have ended are dropped."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, keys: list[str], *, window_seconds: int, at: datetime) -> dict[str, int]:
        start = window_start(at, window_seconds)
        now = int(at.timestamp())
        with self._lock:
            self._counts = {
                k: v for k, v in self._counts.items() if k[2] + k[1] > now - PRUNE_INTERVAL_SECONDS
            }
            result = {}
            for key in dict.fromkeys(keys):
                slot = (key, window_seconds, start)
                self._counts[slot] = self._counts.get(slot, 0) + 1
                result[key] = self._counts[slot]
            return result

    def count_rows(self) -> int:
        with self._lock:
            return len(self._counts)


class SqlSendCounters:
    """Counters in `tessera_send_counters (key, window_seconds, window_start, count)` on
    SQLite (the events' file) or PostgreSQL (the configured schema).

    Each key is one `INSERT ... ON CONFLICT DO UPDATE SET count = count + 1 RETURNING count`,
    all keys of a hit in one transaction taken in sorted order (no deadlock between two hits),
    so concurrent processes never lose a count. Rows of windows that ended more than a minute
    ago are deleted at most once a minute per process. With `memory://` (one process, nothing
    kept) the counts live in this process, like every other store on that URL."""

    def __init__(
        self, database: Database, *, create_table: bool = True, pool_size: int = 4
    ) -> None:
        if database.kind not in ("sqlite", "postgres", "memory"):
            raise ValueError(f"no send counters for a {database.kind!r} database")
        self._memory = InMemorySendCounters() if database.kind == "memory" else None
        self._db = database
        self._lock = threading.Lock()
        self._last_prune: int | None = None
        self._pool: Any = None
        if database.kind == "postgres":
            from psycopg import sql
            from psycopg_pool import ConnectionPool

            table = sql.Identifier(database.schema, TABLE).as_string(None)
            self._table = table
            self._pool = ConnectionPool(
                database.conninfo,
                min_size=1,
                max_size=pool_size,
                open=True,
                kwargs={"autocommit": True},
            )
            self._mark = "%s"
        else:
            self._table = TABLE
            self._mark = "?"
        if create_table and self._memory is None:
            self._create_table()

    def _create_table(self) -> None:
        statement = (
            f"CREATE TABLE IF NOT EXISTS {self._table} (key TEXT NOT NULL, "
            "window_seconds INTEGER NOT NULL, window_start BIGINT NOT NULL, "
            "count INTEGER NOT NULL, PRIMARY KEY (key, window_seconds, window_start))"
        )
        if self._pool is None:
            with self._sqlite() as db:
                db.execute(statement)
            return
        import psycopg

        self._db.prepare()
        # another process may create it at the same moment (a pg_type unique violation)
        with (
            contextlib.suppress(psycopg.errors.UniqueViolation),
            self._pool.connection() as conn,
        ):
            conn.execute(statement)

    @contextlib.contextmanager
    def _sqlite(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self._db.sqlite_path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A cursor in a write transaction: `BEGIN IMMEDIATE` on SQLite takes the write lock
        up front, so two processes queue instead of failing on a lock upgrade."""
        if self._pool is None:
            with self._sqlite() as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db.cursor()
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            return
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            yield cursor

    def hit(self, keys: list[str], *, window_seconds: int, at: datetime) -> dict[str, int]:
        if self._memory is not None:
            return self._memory.hit(keys, window_seconds=window_seconds, at=at)
        start = window_start(at, window_seconds)
        now = int(at.timestamp())
        m = self._mark
        upsert = (
            f"INSERT INTO {self._table} AS c (key, window_seconds, window_start, count) "  # noqa: S608
            f"VALUES ({m}, {m}, {m}, 1) ON CONFLICT (key, window_seconds, window_start) "
            "DO UPDATE SET count = c.count + 1 RETURNING count"
        )
        result: dict[str, int] = {}
        with self._transaction() as cursor:
            for key in sorted(set(keys)):
                cursor.execute(upsert, (key, window_seconds, start))
                row = cursor.fetchone()
                result[key] = int(row[0])
            if self._prune_due(now):
                cursor.execute(
                    f"DELETE FROM {self._table} WHERE window_start + window_seconds < {m}",  # noqa: S608
                    (now - PRUNE_INTERVAL_SECONDS,),
                )
        return {key: result[key] for key in dict.fromkeys(keys)}

    def _prune_due(self, now: int) -> bool:
        with self._lock:
            if (
                self._last_prune is not None
                and abs(now - self._last_prune) < PRUNE_INTERVAL_SECONDS
            ):
                return False
            self._last_prune = now
            return True

    def count_rows(self) -> int:
        """How many windows are stored (for tests and the admin's curiosity)."""
        if self._memory is not None:
            return self._memory.count_rows()
        with self._transaction() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {self._table}")  # noqa: S608
            row = cursor.fetchone()
            return int(row[0])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
