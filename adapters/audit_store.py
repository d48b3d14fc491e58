"""The audit trail's tables on SQLite and PostgreSQL, written with their tracking position."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from psycopg.sql import SQL, Composed, Identifier

from adapters.projection_store import array_literal, claim_postgres, claim_sqlite
from application.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditQuery,
    AuditRecord,
    AuditTrailView,
    Subject,
    chain_hash,
    iso,
    stored_details,
)

_RECORD_COLUMNS = (
    "org_id, seq, position, event_id, at, subject_id, user_id, actor_type, actor_id, action, "
    "outcome, method, ip, user_agent, details, prev_hash, hash"
)
_SUBJECT_COLUMNS = "aggregate_id, org_id, kind, user_id, method, role, ip, user_agent"


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _datetime(value: Any) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at.astimezone(UTC)


def _record(row: Sequence[Any]) -> AuditRecord:
    entry = AuditEntry(
        org_id=_uuid(row[0]),
        position=int(row[2]),
        event_id=str(row[3]),
        at=_datetime(row[4]),
        subject_id=_uuid(row[5]),
        user_id=row[6],
        actor_type=str(row[7]),
        actor_id=row[8],
        action=str(row[9]),
        outcome=str(row[10]),
        method=row[11],
        ip=row[12],
        user_agent=row[13],
        details=json.loads(row[14]),
    )
    return AuditRecord(entry=entry, seq=int(row[1]), prev_hash=str(row[15]), hash=str(row[16]))


def _subject(row: Sequence[Any]) -> Subject:
    return Subject(
        _uuid(row[0]), _uuid(row[1]), str(row[2]), row[3], row[4], row[5], row[6], row[7]
    )


def _subject_fields(s: Subject) -> tuple[str | None, ...]:
    return (s.user_id, s.method, s.role, s.ip, s.user_agent)


def _sealed_rows(
    entries: Sequence[AuditEntry], heads: dict[UUID, tuple[int, str]]
) -> tuple[list[tuple[Any, ...]], dict[UUID, tuple[int, str]]]:
    """Seal entries onto their organisations' chains: the rows (in `_RECORD_COLUMNS` order,
    as text and numbers, which both stores take as they are) and the moved heads."""
    moved: dict[UUID, tuple[int, str]] = {}
    orgs: dict[UUID, str] = {}
    rows = []
    for e in entries:
        org = e.org_id
        seq, previous = moved.get(org) or heads.get(org) or (0, GENESIS_HASH)
        seq += 1
        org_text = orgs.get(org)
        if org_text is None:
            org_text = orgs[org] = str(org)
        texts = (org_text, iso(e.at), str(e.subject_id))  # as e.texts(), the org's once
        digest = chain_hash(e, seq, previous, texts=texts)
        moved[org] = (seq, digest)
        rows.append(
            (
                texts[0],
                seq,
                e.position,
                e.event_id,
                texts[1],
                texts[2],
                e.user_id,
                e.actor_type,
                e.actor_id,
                e.action,
                e.outcome,
                e.method,
                e.ip,
                e.user_agent,
                stored_details(e.details) if e.details else "{}",
                previous,
                digest,
            )
        )
    return rows, moved


def _filters(query: AuditQuery, mark: str) -> tuple[list[str], list[Any]]:
    clauses, params = [f"org_id = {mark}", f"seq > {mark}"], [query.org_id, query.after_seq]
    for column, value in (
        ("user_id", query.user_id),
        ("action", query.action),
        ("outcome", query.outcome),
    ):
        if value is not None:
            clauses.append(f"{column} = {mark}")
            params.append(value)
    if query.since is not None:
        clauses.append(f"at >= {mark}")
        params.append(query.since)
    if query.until is not None:
        clauses.append(f"at < {mark}")
        params.append(query.until)
    return clauses, params


class SqliteAuditTrailView(AuditTrailView, SQLiteTrackingRecorder):
    """Audit tables in their own SQLite file: eventsourcing names SQLite's tracking table
    `tracking` whatever the projection, so each projection gets a file of its own."""

    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.records_table = "audit_records"
        self.heads_table = "audit_heads"
        self.subjects_table = "audit_subjects"

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS audit_records (org_id TEXT NOT NULL, seq INTEGER NOT NULL, "
            "position INTEGER NOT NULL UNIQUE, event_id TEXT NOT NULL, at TEXT NOT NULL, "
            "subject_id TEXT NOT NULL, user_id TEXT, actor_type TEXT NOT NULL, actor_id TEXT, "
            "action TEXT NOT NULL, outcome TEXT NOT NULL, method TEXT, ip TEXT, user_agent TEXT, "
            "details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, "
            "PRIMARY KEY (org_id, seq))",
            "CREATE INDEX IF NOT EXISTS audit_records_org_at ON audit_records (org_id, at)",
            "CREATE TABLE IF NOT EXISTS audit_heads (org_id TEXT PRIMARY KEY, "
            "seq INTEGER NOT NULL, hash TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS audit_subjects (aggregate_id TEXT PRIMARY KEY, "
            "org_id TEXT NOT NULL, kind TEXT NOT NULL, user_id TEXT, method TEXT, role TEXT, "
            "ip TEXT, user_agent TEXT)",
        ]

    def subjects(self, ids: Collection[UUID]) -> dict[UUID, Subject]:
        if not ids:
            return {}
        found: dict[UUID, Subject] = {}
        keys = [str(i) for i in ids]
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                c.execute(
                    f"SELECT {_SUBJECT_COLUMNS} FROM audit_subjects "  # noqa: S608
                    f"WHERE aggregate_id IN ({marks})",
                    chunk,
                )
                found.update((s.aggregate_id, s) for s in map(_subject, c.fetchall()))
        return found

    def append(
        self,
        entries: Sequence[AuditEntry],
        subjects: Sequence[Subject],
        tracking: Tracking,
        *,
        first: int,
    ) -> None:
        with self.datastore.transaction(commit=True) as c:
            claim_sqlite(c, tracking, first=first)  # first: the batch's exclusive claim
            orgs = sorted({str(e.org_id) for e in entries})
            heads: dict[UUID, tuple[int, str]] = {}
            if orgs:
                marks = ",".join("?" * len(orgs))
                c.execute(
                    f"SELECT org_id, seq, hash FROM audit_heads WHERE org_id IN ({marks})",  # noqa: S608
                    orgs,
                )
                heads = {UUID(r[0]): (int(r[1]), str(r[2])) for r in c.fetchall()}
            rows, moved = _sealed_rows(entries, heads)
            c.executemany(
                "INSERT INTO audit_subjects VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (aggregate_id) DO NOTHING",
                [
                    (str(s.aggregate_id), str(s.org_id), s.kind, *_subject_fields(s))
                    for s in subjects
                ],
            )
            c.executemany(
                f"INSERT INTO audit_records ({_RECORD_COLUMNS}) VALUES "  # noqa: S608
                f"({','.join('?' * 17)})",
                rows,
            )
            c.executemany(
                "INSERT INTO audit_heads VALUES (?, ?, ?) ON CONFLICT (org_id) "
                "DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                [(str(org), seq, digest) for org, (seq, digest) in moved.items()],
            )

    def _select(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return list(c.fetchall())

    def query(self, query: AuditQuery) -> list[AuditRecord]:
        clauses, params = _filters(query, "?")
        params = [str(params[0]), *params[1:]]
        params = [
            p.astimezone(UTC).isoformat(timespec="microseconds") if isinstance(p, datetime) else p
            for p in params
        ]
        rows = self._select(
            f"SELECT {_RECORD_COLUMNS} FROM audit_records WHERE "  # noqa: S608
            f"{' AND '.join(clauses)} ORDER BY seq LIMIT ?",
            [*params, query.limit],
        )
        return [_record(r) for r in rows]

    def after_position(self, position: int, *, org_id: UUID, limit: int) -> list[AuditRecord]:
        rows = self._select(
            f"SELECT {_RECORD_COLUMNS} FROM audit_records WHERE org_id = ? "  # noqa: S608
            "AND position > ? ORDER BY position LIMIT ?",
            [str(org_id), position, limit],
        )
        return [_record(r) for r in rows]

    def chain(self, org_id: UUID) -> Iterator[AuditRecord]:
        after = 0
        while True:
            rows = self._select(
                f"SELECT {_RECORD_COLUMNS} FROM audit_records WHERE org_id = ? "  # noqa: S608
                "AND seq > ? ORDER BY seq LIMIT 1000",
                [str(org_id), after],
            )
            if not rows:
                return
            for row in rows:
                yield _record(row)
            after = int(rows[-1][1])

    def heads(self) -> dict[UUID, tuple[int, str]]:
        rows = self._select("SELECT org_id, seq, hash FROM audit_heads", [])
        return {UUID(r[0]): (int(r[1]), str(r[2])) for r in rows}

    def reset(self) -> None:
        with self.datastore.transaction(commit=True) as c:
            for table in ("audit_records", "audit_heads", "audit_subjects"):
                c.execute(f"DELETE FROM {table}")  # noqa: S608
            c.execute("DELETE FROM tracking WHERE application_name <> '__migration__'")

    def close(self) -> None:
        self.datastore.close()


class PostgresAuditTrailView(AuditTrailView, PostgresTrackingRecorder):
    """Audit tables beside the events; names follow the tracking table's (`audit_tracking`
    gives `audit_records`, `audit_heads`, `audit_subjects`)."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        prefix = self.tracking_table_name.removesuffix("_tracking")
        schema = self.datastore.schema
        self.tables: dict[str, Identifier] = {
            "r": Identifier(schema, f"{prefix}_records"),
            "h": Identifier(schema, f"{prefix}_heads"),
            "s": Identifier(schema, f"{prefix}_subjects"),
            "t": Identifier(schema, self.tracking_table_name),
            "ix": Identifier(f"{prefix}_records_org_at"),
        }
        self.sql_create_statements.extend(
            [
                self._sql(
                    "CREATE TABLE IF NOT EXISTS {r} (org_id uuid NOT NULL, seq bigint NOT NULL, "
                    "position bigint NOT NULL UNIQUE, event_id text NOT NULL, "
                    "at timestamptz NOT NULL, subject_id uuid NOT NULL, user_id text, "
                    "actor_type text NOT NULL, actor_id text, action text NOT NULL, "
                    "outcome text NOT NULL, method text, ip text, user_agent text, "
                    "details text NOT NULL, prev_hash text NOT NULL, hash text NOT NULL, "
                    "PRIMARY KEY (org_id, seq))"
                ),
                self._sql("CREATE INDEX IF NOT EXISTS {ix} ON {r} (org_id, at)"),
                self._sql(
                    "CREATE TABLE IF NOT EXISTS {h} (org_id uuid PRIMARY KEY, "
                    "seq bigint NOT NULL, hash text NOT NULL)"
                ),
                self._sql(
                    "CREATE TABLE IF NOT EXISTS {s} (aggregate_id uuid PRIMARY KEY, "
                    "org_id uuid NOT NULL, kind text NOT NULL, user_id text, method text, "
                    "role text, ip text, user_agent text)"
                ),
            ]
        )

    def _sql(self, text: str) -> Composed:
        """`text` names tables as {r}, {h}, {s}, {t}; only constants are ever interpolated."""
        return SQL(text).format(**self.tables)

    def _select(self, query: Composed, params: Sequence[Any]) -> list[Any]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, params, prepare=False)
            return [tuple(row.values()) for row in curs.fetchall()]

    def subjects(self, ids: Collection[UUID]) -> dict[UUID, Subject]:
        if not ids:
            return {}
        rows = self._select(
            self._sql(f"SELECT {_SUBJECT_COLUMNS} FROM {{s}} WHERE aggregate_id = ANY(%s)"),  # noqa: S608
            [list(ids)],
        )
        return {s.aggregate_id: s for s in map(_subject, rows)}

    def append(
        self,
        entries: Sequence[AuditEntry],
        subjects: Sequence[Subject],
        tracking: Tracking,
        *,
        first: int,
    ) -> None:
        with self.datastore.transaction(commit=True) as curs:
            # first: a concurrent writer of the same batch waits here, then is refused
            claim_postgres(curs, self.tables["t"], tracking, first=first)
            orgs = sorted({e.org_id for e in entries}, key=str)
            heads: dict[UUID, tuple[int, str]] = {}
            if orgs:
                curs.execute(
                    self._sql("SELECT org_id, seq, hash FROM {h} WHERE org_id = ANY(%s)"),
                    [orgs],
                    prepare=False,
                )
                heads = {
                    _uuid(r["org_id"]): (int(r["seq"]), str(r["hash"])) for r in curs.fetchall()
                }
            rows, moved = _sealed_rows(entries, heads)
            if subjects:  # one statement: a column per array
                columns = list(
                    zip(
                        *[
                            (str(s.aggregate_id), str(s.org_id), s.kind, *_subject_fields(s))
                            for s in subjects
                        ],
                        strict=True,
                    )
                )
                curs.execute(
                    self._sql(
                        f"INSERT INTO {{s}} ({_SUBJECT_COLUMNS}) SELECT * FROM unnest("  # noqa: S608
                        "%s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::text[], "
                        "%s::text[], %s::text[], %s::text[]) ON CONFLICT (aggregate_id) DO NOTHING"
                    ),
                    [array_literal(c) for c in columns],
                )
            if rows:  # COPY of text and numbers: one round trip, written in C by psycopg
                with curs.copy(self._sql(f"COPY {{r}} ({_RECORD_COLUMNS}) FROM STDIN")) as copy:
                    for row in rows:
                        copy.write_row(row)
            if moved:
                curs.execute(
                    self._sql(
                        "INSERT INTO {h} (org_id, seq, hash) SELECT * FROM "
                        "unnest(%s::uuid[], %s::bigint[], %s::text[]) ON CONFLICT (org_id) "
                        "DO UPDATE SET seq = excluded.seq, hash = excluded.hash"
                    ),
                    [
                        array_literal([str(org) for org in moved]),
                        array_literal([seq for seq, _ in moved.values()]),
                        array_literal([digest for _, digest in moved.values()]),
                    ],
                )

    def query(self, query: AuditQuery) -> list[AuditRecord]:
        clauses, params = _filters(query, "%s")
        statement = self._sql(
            f"SELECT {_RECORD_COLUMNS} FROM {{r}} WHERE {' AND '.join(clauses)} "  # noqa: S608
            "ORDER BY seq LIMIT %s"
        )
        return [_record(r) for r in self._select(statement, [*params, query.limit])]

    def after_position(self, position: int, *, org_id: UUID, limit: int) -> list[AuditRecord]:
        statement = self._sql(
            f"SELECT {_RECORD_COLUMNS} FROM {{r}} WHERE org_id = %s AND position > %s "  # noqa: S608
            "ORDER BY position LIMIT %s"
        )
        return [_record(r) for r in self._select(statement, [org_id, position, limit])]

    def chain(self, org_id: UUID) -> Iterator[AuditRecord]:
        statement = self._sql(
            f"SELECT {_RECORD_COLUMNS} FROM {{r}} WHERE org_id = %s AND seq > %s "  # noqa: S608
            "ORDER BY seq LIMIT 1000"
        )
        after = 0
        while rows := self._select(statement, [org_id, after]):
            yield from map(_record, rows)
            after = int(rows[-1][1])

    def heads(self) -> dict[UUID, tuple[int, str]]:
        rows = self._select(self._sql("SELECT org_id, seq, hash FROM {h}"), [])
        return {_uuid(r[0]): (int(r[1]), str(r[2])) for r in rows}

    def reset(self) -> None:
        with self.datastore.transaction(commit=True) as curs:
            # TRUNCATE: no dead rows for the rebuild to wade through and vacuum to clear
            curs.execute(self._sql("TRUNCATE {r}, {h}, {s}"), prepare=False)
            curs.execute(
                self._sql("DELETE FROM {t} WHERE application_name <> '__migration__'"),
                prepare=False,
            )

    def close(self) -> None:
        self.datastore.close()
