"""Plumbing that SQLite and PostgreSQL read models share: table names, marks, reads, writes.

A view writes its SQL once with `%s` marks and `{table}` names; the SQLite side turns marks
into `?` and names into the fixed table names of its own file, the PostgreSQL side composes
schema-qualified identifiers named after the view's tracking table (`<name>_tracking` gives
`<name>_<table>`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from psycopg.sql import SQL, Composable, Identifier

#: The tracking row moves to the batch's last position only if it is before the batch's first:
#: a batch of which any event was applied before (by another process, or before a crash that
#: lost its reply) claims nothing, whatever its length. eventsourcing's own statement only
#: compares the last position, so a longer batch overlapping a shorter one would pass.
_CLAIM = (
    "INSERT INTO {tracking} (application_name, notification_id) VALUES (%s, %s) "
    "ON CONFLICT (application_name) DO UPDATE SET notification_id = excluded.notification_id "
    "WHERE {tracking}.notification_id < %s RETURNING notification_id"
)


#: Inside a double-quoted element of an array literal, `"` and `\\` are escaped.
_ARRAY_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


def array_literal(values: Sequence[Any]) -> str:
    """A PostgreSQL array literal (`{"a","b",NULL}`, `{1,2}`) of str, int or None values, cast
    with `%s::text[]` or `%s::bigint[]`: psycopg's own list dumper works in Python with a
    regex per element, several times slower than this for the batches a rebuild writes."""
    parts = []
    for value in values:
        if value is None:
            parts.append("NULL")
        elif type(value) is int:
            parts.append(str(value))
        else:
            parts.append(f'"{str(value).translate(_ARRAY_ESCAPES)}"')
    return "{" + ",".join(parts) + "}"


def claim_sqlite(cursor: Any, tracking: Tracking, *, first: int) -> None:
    """Record `tracking` in the caller's transaction (SQLite views' table is `tracking`);
    IntegrityError when an event from `first` on was applied before."""
    cursor.execute(
        _CLAIM.format(tracking="tracking").replace("%s", "?"),
        (tracking.application_name, tracking.notification_id, first),
    )
    if cursor.fetchone() is None:
        raise IntegrityError(f"events {first}-{tracking.notification_id} were applied before")


def claim_postgres(cursor: Any, table: Composable, tracking: Tracking, *, first: int) -> None:
    """Record `tracking` in the caller's transaction; IntegrityError when an event from
    `first` on was applied before.

    The transaction's commit does not wait for its WAL to reach the disk: a server crash can
    lose only whole batches together with their position, and those are applied again.
    """
    cursor.execute("SET LOCAL synchronous_commit TO OFF", prepare=True)
    cursor.execute(
        SQL(_CLAIM).format(tracking=table),
        (tracking.application_name, tracking.notification_id, first),
        prepare=True,
    )
    if cursor.fetchone() is None:
        raise IntegrityError(f"events {first}-{tracking.notification_id} were applied before")


class SqliteViewPlumbing(SQLiteTrackingRecorder):
    """A view in its own SQLite file (eventsourcing's SQLite tracking table is always
    `tracking`); `table_names` maps `{key}` in SQL texts to `<prefix>_<key>`."""

    table_prefix = ""
    table_keys: tuple[str, ...] = ()

    def q(self, text: str) -> str:
        names = {key: f"{self.table_prefix}_{key}" for key in self.table_keys}
        names.update({f"ix_{key}": f"{self.table_prefix}_{key}_ix" for key in self.table_keys})
        return text.format(tracking="tracking", **names).replace("%s", "?")

    @contextmanager
    def cursor(self, *, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as c:
            yield c

    @staticmethod
    def rows(cursor: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in cursor.fetchall()]

    def select(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.cursor(commit=False) as c:
            c.execute(self.q(text), list(params))
            return self.rows(c)

    def execute(self, cursor: Any, text: str, params: Sequence[Any] = ()) -> None:
        cursor.execute(self.q(text), list(params))

    def execute_many(self, cursor: Any, text: str, params: Sequence[Sequence[Any]]) -> None:
        if params:
            cursor.executemany(self.q(text), [list(p) for p in params])

    def insert_rows(
        self, cursor: Any, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Append rows to the table `{key}` (plain inserts; PostgreSQL uses COPY)."""
        marks = ", ".join(["%s"] * len(columns))
        text = f"INSERT INTO {{{key}}} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
        self.execute_many(cursor, text, rows)

    def track_in(self, cursor: Any, tracking: Tracking, *, first: int) -> None:
        """Record the tracking position inside the caller's transaction (see `claim_sqlite`)."""
        claim_sqlite(cursor, tracking, first=first)

    def upsert_rows(
        self,
        cursor: Any,
        key: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[Sequence[Any]],
        *,
        conflict: str,
        update: Sequence[str] = (),
    ) -> None:
        """Insert or update rows of `{key}` (`columns` are (name, PostgreSQL type) pairs)."""
        names = ", ".join(name for name, _ in columns)
        marks = ", ".join(["%s"] * len(columns))
        self.execute_many(
            cursor,
            f"INSERT INTO {{{key}}} ({names}) VALUES ({marks}) {_on_conflict(conflict, update)}",  # noqa: S608
            rows,
        )

    def select_keys(
        self,
        cursor: Any,
        key: str,
        key_columns: Sequence[tuple[str, str]],
        value_columns: str,
        keys: Sequence[Sequence[Any]],
    ) -> list[tuple[Any, ...]]:
        """The rows of `{key}` whose key columns equal one of `keys`: key columns, then
        `value_columns`. In chunks that stay below SQLite's limit on bound variables."""
        names = ", ".join(name for name, _ in key_columns)
        found: list[tuple[Any, ...]] = []
        chunk_size = max(1, 4000 // len(key_columns))
        for start in range(0, len(keys), chunk_size):
            chunk = keys[start : start + chunk_size]
            one = "(" + ", ".join(["%s"] * len(key_columns)) + ")"
            self.execute(
                cursor,
                f"SELECT {names}, {value_columns} FROM {{{key}}} "  # noqa: S608
                f"WHERE ({names}) IN (VALUES {', '.join([one] * len(chunk))})",
                [v for k in chunk for v in k],
            )
            found.extend(self.rows(cursor))
        return found

    def empty(self, cursor: Any, keys: Sequence[str]) -> None:
        """Delete every row of the tables `{key}`."""
        for key in keys:
            self.execute(cursor, f"DELETE FROM {{{key}}}")  # noqa: S608

    def create_view_tables(self, statements: Sequence[str]) -> list[str]:
        return [self.q(s) for s in statements]

    def close(self) -> None:
        self.datastore.close()


class PostgresViewPlumbing(PostgresTrackingRecorder):
    """A view beside the events in the schema; tables are named after the tracking table."""

    table_keys: tuple[str, ...] = ()

    def q(self, text: str) -> Any:
        prefix = self.tracking_table_name.removesuffix("_tracking")
        schema = self.datastore.schema
        names = {key: Identifier(schema, f"{prefix}_{key}") for key in self.table_keys}
        names["tracking"] = Identifier(schema, self.tracking_table_name)
        names.update({f"ix_{key}": Identifier(f"{prefix}_{key}_ix") for key in self.table_keys})
        return SQL(text).format(**names)  # only constant texts are ever formatted

    @contextmanager
    def cursor(self, *, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as curs:
            yield curs

    @staticmethod
    def rows(cursor: Any) -> list[tuple[Any, ...]]:
        return [tuple(row.values()) for row in cursor.fetchall()]

    def select(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.cursor(commit=False) as curs:
            curs.execute(self.q(text), list(params), prepare=False)
            return self.rows(curs)

    def execute(self, cursor: Any, text: str, params: Sequence[Any] = ()) -> None:
        cursor.execute(self.q(text), list(params), prepare=False)

    def execute_many(self, cursor: Any, text: str, params: Sequence[Sequence[Any]]) -> None:
        if params:
            cursor.executemany(self.q(text), [list(p) for p in params])

    def insert_rows(
        self, cursor: Any, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Append rows to the table `{key}` with COPY: one round trip for a whole batch. Pass
        str and int values: psycopg writes those in C, other types (UUID, datetime) through
        Python dumpers at several times the cost; the server parses the text either way."""
        if not rows:
            return
        text = f"COPY {{{key}}} ({', '.join(columns)}) FROM STDIN"
        with cursor.copy(self.q(text)) as copy:
            for row in rows:
                copy.write_row(row)

    def track_in(self, cursor: Any, tracking: Tracking, *, first: int) -> None:
        """Record the tracking position inside the caller's transaction (see `claim_postgres`)."""
        claim_postgres(cursor, self.q("{tracking}"), tracking, first=first)

    def upsert_rows(
        self,
        cursor: Any,
        key: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[Sequence[Any]],
        *,
        conflict: str,
        update: Sequence[str] = (),
    ) -> None:
        """Insert or update rows of `{key}` in one statement: the batch goes as one array per
        column through `unnest`, so a batch costs one round trip, not one per row."""
        if not rows:
            return
        names = ", ".join(name for name, _ in columns)
        arrays = ", ".join(f"%s::{kind}[]" for _, kind in columns)
        text = (
            f"INSERT INTO {{{key}}} ({names}) SELECT * FROM unnest({arrays}) "  # noqa: S608
            + _on_conflict(conflict, update)
        )
        columns_of_rows = zip(*rows, strict=True)
        cursor.execute(self.q(text), [array_literal(column) for column in columns_of_rows])

    def select_keys(
        self,
        cursor: Any,
        key: str,
        key_columns: Sequence[tuple[str, str]],
        value_columns: str,
        keys: Sequence[Sequence[Any]],
    ) -> list[tuple[Any, ...]]:
        """The rows of `{key}` whose key columns equal one of `keys`: key columns, then
        `value_columns`. One query: the keys go as one array per column."""
        if not keys:
            return []
        names = ", ".join(name for name, _ in key_columns)
        arrays = ", ".join(f"%s::{kind}[]" for _, kind in key_columns)
        self.execute(
            cursor,
            f"SELECT {names}, {value_columns} FROM {{{key}}} "  # noqa: S608
            f"JOIN unnest({arrays}) AS wanted ({names}) USING ({names})",
            [array_literal(column) for column in zip(*keys, strict=True)],
        )
        return self.rows(cursor)

    def empty(self, cursor: Any, keys: Sequence[str]) -> None:
        """Delete every row of the tables `{key}`: TRUNCATE, which leaves no dead rows behind
        for a rebuild to wade through and vacuum to clear."""
        self.execute(cursor, "TRUNCATE " + ", ".join(f"{{{key}}}" for key in keys))

    def create_view_tables(self, statements: Sequence[str]) -> list[Any]:
        return [self.q(s) for s in statements]

    def close(self) -> None:
        self.datastore.close()


def _on_conflict(conflict: str, update: Sequence[str]) -> str:
    if not update:
        return f"ON CONFLICT ({conflict}) DO NOTHING"
    sets = ", ".join(f"{column} = excluded.{column}" for column in update)
    return f"ON CONFLICT ({conflict}) DO UPDATE SET {sets}"
