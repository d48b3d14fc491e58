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

from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from psycopg.sql import SQL, Identifier


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

    def track_in(self, cursor: Any, tracking: Any) -> None:
        """Record the tracking position inside the caller's transaction."""
        self._insert_tracking(cursor, tracking)

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
        """Append rows to the table `{key}` with COPY: one round trip for a whole batch."""
        if not rows:
            return
        text = f"COPY {{{key}}} ({', '.join(columns)}) FROM STDIN"
        with cursor.copy(self.q(text)) as copy:
            for row in rows:
                copy.write_row(row)

    def track_in(self, cursor: Any, tracking: Any) -> None:
        """Record the tracking position inside the caller's transaction."""
        self._insert_tracking(cursor, tracking)

    def create_view_tables(self, statements: Sequence[str]) -> list[Any]:
        return [self.q(s) for s in statements]

    def close(self) -> None:
        self.datastore.close()
