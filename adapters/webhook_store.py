"""The webhook outbox's tables on SQLite and PostgreSQL, written with their tracking position."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from psycopg.sql import SQL, Identifier

from application.webhooks import (
    Attempt,
    Delivery,
    OutboxBatch,
    Subscription,
    WebhookOutboxView,
    WebhookSubject,
)

_SUBSCRIPTION = "webhook_id, org_id, url, events, description, secret_ref, created_at, deleted_at"
_DELIVERY = (
    "delivery_id, webhook_id, org_id, position, event_type, payload, created_at, attempts, "
    "next_attempt_at, status, last_status, last_error, last_attempt_at, delivered_at"
)


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _at(value: Any) -> datetime | None:
    if value is None:
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at.astimezone(UTC)


def _subscription(row: Sequence[Any]) -> Subscription:
    created = _at(row[6])
    assert created is not None
    return Subscription(
        _uuid(row[0]),
        _uuid(row[1]),
        str(row[2]),
        tuple(json.loads(row[3])),
        row[4],
        str(row[5]),
        created,
        _at(row[7]),
    )


def _delivery(row: Sequence[Any]) -> Delivery:
    created = _at(row[6])
    assert created is not None
    return Delivery(
        delivery_id=_uuid(row[0]),
        webhook_id=_uuid(row[1]),
        org_id=_uuid(row[2]),
        position=int(row[3]),
        event_type=str(row[4]),
        payload=str(row[5]),
        created_at=created,
        attempts=int(row[7]),
        next_attempt_at=_at(row[8]),
        status=str(row[9]),
        last_status=None if row[10] is None else int(row[10]),
        last_error=row[11],
        last_attempt_at=_at(row[12]),
        delivered_at=_at(row[13]),
    )


class _OutboxSql(WebhookOutboxView):
    """The SQL both stores share; each names its tables, marks and values."""

    mark = "?"
    claim_lock = ""  # PostgreSQL: FOR UPDATE SKIP LOCKED

    def _t(self, name: str) -> str:
        raise NotImplementedError

    @contextmanager
    def _tx(self, *, commit: bool) -> Iterator[Any]:
        raise NotImplementedError
        yield

    def _v(self, value: Any) -> Any:
        """A Python value as the store wants it."""
        return value

    def _rows(self, cursor: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in cursor.fetchall()]

    def _marks(self, n: int) -> str:
        return ", ".join([self.mark] * n)

    def _select(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._tx(commit=False) as c:
            c.execute(sql, [self._v(p) for p in params])
            return self._rows(c)

    def _create_statements(self, types: dict[str, str]) -> list[str]:
        t = types
        return [
            f"CREATE TABLE IF NOT EXISTS {self._t('subscriptions')} (webhook_id {t['id']} "
            f"PRIMARY KEY, org_id {t['id']} NOT NULL, url TEXT NOT NULL, events TEXT NOT NULL, "
            f"description TEXT, secret_ref TEXT NOT NULL, created_at {t['at']} NOT NULL, "
            f"deleted_at {t['at']})",
            f"CREATE TABLE IF NOT EXISTS {self._t('subjects')} (aggregate_id {t['id']} "
            f"PRIMARY KEY, org_id {t['id']} NOT NULL, user_id TEXT NOT NULL, detail TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {self._t('outbox')} (delivery_id {t['id']} PRIMARY KEY, "
            f"webhook_id {t['id']} NOT NULL, org_id {t['id']} NOT NULL, position {t['int']} "
            f"NOT NULL, event_type TEXT NOT NULL, payload TEXT NOT NULL, created_at {t['at']} "
            f"NOT NULL, attempts INTEGER NOT NULL, next_attempt_at {t['at']}, "
            f"status TEXT NOT NULL, last_status INTEGER, last_error TEXT, "
            f"last_attempt_at {t['at']}, delivered_at {t['at']}, claimed_until {t['at']})",
            f"CREATE INDEX IF NOT EXISTS {self._ix('outbox_due')} ON {self._t('outbox')} "
            "(status, next_attempt_at)",
            f"CREATE INDEX IF NOT EXISTS {self._ix('outbox_webhook')} ON {self._t('outbox')} "
            "(webhook_id, position)",
            f"CREATE TABLE IF NOT EXISTS {self._t('attempts')} (delivery_id {t['id']} NOT NULL, "
            f"number INTEGER NOT NULL, at {t['at']} NOT NULL, status INTEGER, error TEXT, "
            "PRIMARY KEY (delivery_id, number))",
        ]

    def _ix(self, name: str) -> str:
        return name

    def active_subscriptions(self, org_ids: Collection[UUID]) -> list[Subscription]:
        found: list[Subscription] = []
        ids = sorted(org_ids, key=str)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            found += map(
                _subscription,
                self._select(
                    f"SELECT {_SUBSCRIPTION} FROM {self._t('subscriptions')} "  # noqa: S608
                    f"WHERE deleted_at IS NULL AND org_id IN ({self._marks(len(chunk))})",
                    chunk,
                ),
            )
        return found

    def subscriptions(self, org_id: UUID) -> list[Subscription]:
        rows = self._select(
            f"SELECT {_SUBSCRIPTION} FROM {self._t('subscriptions')} "  # noqa: S608
            f"WHERE deleted_at IS NULL AND org_id = {self.mark} ORDER BY created_at, webhook_id",
            [org_id],
        )
        return [_subscription(r) for r in rows]

    def subscription(self, webhook_id: UUID) -> Subscription | None:
        rows = self._select(
            f"SELECT {_SUBSCRIPTION} FROM {self._t('subscriptions')} "  # noqa: S608
            f"WHERE webhook_id = {self.mark}",
            [webhook_id],
        )
        return _subscription(rows[0]) if rows else None

    def subjects(self, ids: Collection[UUID]) -> dict[UUID, WebhookSubject]:
        found: dict[UUID, WebhookSubject] = {}
        keys = list(ids)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            for row in self._select(
                f"SELECT aggregate_id, org_id, user_id, detail FROM {self._t('subjects')} "  # noqa: S608
                f"WHERE aggregate_id IN ({self._marks(len(chunk))})",
                chunk,
            ):
                subject = WebhookSubject(_uuid(row[0]), _uuid(row[1]), str(row[2]), str(row[3]))
                found[subject.aggregate_id] = subject
        return found

    def _write(self, c: Any, sql: str, rows: list[Sequence[Any]]) -> None:
        if rows:
            c.executemany(sql, [[self._v(v) for v in row] for row in rows])

    def apply(self, batch: OutboxBatch, tracking: Tracking) -> None:
        m = self.mark
        with self._tx(commit=True) as c:
            # first: the batch's exclusive claim (eventsourcing wants its own cursor)
            self._insert_tracking(getattr(c, "raw", c), tracking)  # type: ignore[attr-defined]
            self._write(
                c,
                f"INSERT INTO {self._t('subscriptions')} ({_SUBSCRIPTION}) "  # noqa: S608
                f"VALUES ({self._marks(8)}) ON CONFLICT (webhook_id) DO NOTHING",
                [
                    (s.webhook_id, s.org_id, s.url, json.dumps(list(s.events)), s.description,
                     s.secret_ref, s.created_at, None)
                    for s in batch.created
                ],
            )  # fmt: skip
            self._write(
                c,
                f"UPDATE {self._t('subscriptions')} SET deleted_at = {m} "  # noqa: S608
                f"WHERE webhook_id = {m} AND deleted_at IS NULL",
                [(at, webhook_id) for webhook_id, at in batch.deleted],
            )
            self._write(
                c,
                f"INSERT INTO {self._t('subjects')} VALUES ({self._marks(4)}) "  # noqa: S608
                "ON CONFLICT (aggregate_id) DO NOTHING",
                [(s.aggregate_id, s.org_id, s.user_id, s.detail) for s in batch.subjects],
            )
            self._write(
                c,
                f"INSERT INTO {self._t('outbox')} ({_DELIVERY}) VALUES ({self._marks(14)}) "  # noqa: S608
                "ON CONFLICT (delivery_id) DO NOTHING",
                [
                    (d.delivery_id, d.webhook_id, d.org_id, d.position, d.event_type, d.payload,
                     d.created_at, 0, d.next_attempt_at, "pending", None, None, None, None)
                    for d in batch.deliveries
                ],
            )  # fmt: skip

    def claim_due(self, *, now: datetime, lease_until: datetime, limit: int) -> list[Delivery]:
        m, outbox = self.mark, self._t("outbox")
        with self._tx(commit=True) as c:
            c.execute(
                f"UPDATE {outbox} SET claimed_until = {m} WHERE delivery_id IN ("  # noqa: S608
                f"SELECT delivery_id FROM {outbox} WHERE status = 'pending' "
                f"AND next_attempt_at <= {m} AND (claimed_until IS NULL OR claimed_until <= {m}) "
                f"ORDER BY next_attempt_at, position LIMIT {m} {self.claim_lock}) "
                f"RETURNING {_DELIVERY}",
                [self._v(lease_until), self._v(now), self._v(now), limit],
            )
            rows = self._rows(c)
        return sorted(map(_delivery, rows), key=lambda d: (d.position, str(d.webhook_id)))

    def record_attempt(
        self,
        delivery: Delivery,
        *,
        at: datetime,
        status: str,
        http_status: int | None,
        error: str | None,
        next_attempt_at: datetime | None,
    ) -> None:
        m = self.mark
        number = delivery.attempts + 1
        with self._tx(commit=True) as c:
            c.execute(
                f"UPDATE {self._t('outbox')} SET attempts = {m}, status = {m}, "  # noqa: S608
                f"last_status = {m}, last_error = {m}, last_attempt_at = {m}, "
                f"next_attempt_at = {m}, delivered_at = {m}, claimed_until = NULL "
                f"WHERE delivery_id = {m} AND status = 'pending'",
                [
                    self._v(v)
                    for v in (
                        number,
                        status,
                        http_status,
                        error,
                        at,
                        next_attempt_at,
                        at if status == "delivered" else None,
                        delivery.delivery_id,
                    )
                ],
            )
            c.execute(
                f"INSERT INTO {self._t('attempts')} VALUES ({self._marks(5)}) "  # noqa: S608
                "ON CONFLICT (delivery_id, number) DO NOTHING",
                [self._v(v) for v in (delivery.delivery_id, number, at, http_status, error)],
            )

    def deliveries(self, webhook_id: UUID, *, limit: int) -> list[Delivery]:
        rows = self._select(
            f"SELECT {_DELIVERY} FROM {self._t('outbox')} WHERE webhook_id = {self.mark} "  # noqa: S608
            f"ORDER BY position DESC LIMIT {self.mark}",
            [webhook_id, limit],
        )
        return [_delivery(r) for r in rows]

    def delivery(self, delivery_id: UUID) -> Delivery | None:
        rows = self._select(
            f"SELECT {_DELIVERY} FROM {self._t('outbox')} "  # noqa: S608
            f"WHERE delivery_id = {self.mark}",
            [delivery_id],
        )
        return _delivery(rows[0]) if rows else None

    def attempts(self, delivery_id: UUID) -> list[Attempt]:
        rows = self._select(
            f"SELECT delivery_id, number, at, status, error FROM {self._t('attempts')} "  # noqa: S608
            f"WHERE delivery_id = {self.mark} ORDER BY number",
            [delivery_id],
        )
        return [
            Attempt(_uuid(r[0]), int(r[1]), _at(r[2]) or datetime.now(UTC), r[3], r[4])
            for r in rows
        ]


class SqliteWebhookOutboxView(_OutboxSql, SQLiteTrackingRecorder):
    """Outbox tables in their own SQLite file (its tracking table is always `tracking`)."""

    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)

    def _t(self, name: str) -> str:
        return f"webhook_{name}"

    def _ix(self, name: str) -> str:
        return f"webhook_{name}"

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            *self._create_statements({"id": "TEXT", "at": "TEXT", "int": "INTEGER"}),
        ]

    @contextmanager
    def _tx(self, *, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as c:
            yield c

    def _v(self, value: Any) -> Any:
        if isinstance(value, UUID):
            return str(value)
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat(timespec="microseconds")
        return value

    def close(self) -> None:
        self.datastore.close()


class PostgresWebhookOutboxView(_OutboxSql, PostgresTrackingRecorder):
    """Outbox tables beside the events: `webhooks_tracking` gives `webhooks_subscriptions`,
    `webhooks_subjects`, `webhooks_outbox` and `webhooks_attempts`."""

    mark = "%s"
    claim_lock = "FOR UPDATE SKIP LOCKED"

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self._prefix = self.tracking_table_name.removesuffix("_tracking")
        self.sql_create_statements.extend(
            SQL(s).format()  # built only from constants and quoted identifiers
            for s in self._create_statements({"id": "uuid", "at": "timestamptz", "int": "bigint"})
        )

    def _t(self, name: str) -> str:
        schema = self.datastore.schema
        return Identifier(schema, f"{self._prefix}_{name}").as_string(None)

    def _ix(self, name: str) -> str:
        return Identifier(f"{self._prefix}_{name}").as_string(None)

    @contextmanager
    def _tx(self, *, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as curs:
            yield _PgCursor(curs)

    def _rows(self, cursor: Any) -> list[tuple[Any, ...]]:
        return [tuple(r.values()) for r in cursor.fetchall()]

    def close(self) -> None:
        self.datastore.close()


class _PgCursor:
    """psycopg's cursor with plain-text SQL (no server-side prepare) for the shared code."""

    def __init__(self, curs: Any) -> None:
        self._curs = curs
        self.raw = curs

    def execute(self, sql: Any, params: Sequence[Any] = ()) -> None:
        self._curs.execute(sql, params, prepare=False)

    def executemany(self, sql: Any, rows: Sequence[Sequence[Any]]) -> None:
        self._curs.executemany(sql, rows)

    def fetchall(self) -> list[Any]:
        return list(self._curs.fetchall())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._curs, name)
