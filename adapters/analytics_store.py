"""The analytics tables on SQLite and PostgreSQL, written with their tracking position."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from adapters.projection_store import PostgresViewPlumbing, SqliteViewPlumbing
from application.analytics import (
    AnalyticsView,
    Batch,
    Change,
    CountDelta,
    Coverage,
    DailyCount,
    Tracked,
    UserDelta,
)

TABLE_KEYS = ("counts", "users", "subjects", "changes")
CHANGE_COLUMNS = ("seq", "position", "org_id", "model", "key", "value")
#: (column, PostgreSQL type) of the tables written with upserts.
SUBJECT_COLUMNS = (
    ("aggregate_id", "text"),
    ("org_id", "text"),
    ("kind", "text"),
    ("user_id", "text"),
    ("method", "text"),
    ("state", "text"),
)
SUBJECT_KEY = SUBJECT_COLUMNS[:1]
COUNT_COLUMNS = (
    ("org_id", "text"),
    ("metric", "text"),
    ("day", "text"),
    ("label", "text"),
    ("value", "bigint"),
)
USER_COLUMNS = (
    ("org_id", "text"),
    ("user_id", "text"),
    ("active", "bigint"),
    ("phishing_resistant", "bigint"),
)

#: Portable types (text days and ids), so both stores run the same statements.
CREATE_STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS {counts} (org_id text NOT NULL, day text NOT NULL, "
    "metric text NOT NULL, label text NOT NULL, value bigint NOT NULL, "
    "PRIMARY KEY (org_id, metric, day, label))",
    "CREATE TABLE IF NOT EXISTS {users} (org_id text NOT NULL, user_id text NOT NULL, "
    "active bigint NOT NULL, phishing_resistant bigint NOT NULL, PRIMARY KEY (org_id, user_id))",
    "CREATE TABLE IF NOT EXISTS {subjects} (aggregate_id text PRIMARY KEY, org_id text NOT NULL, "
    "kind text NOT NULL, user_id text NOT NULL, method text, state text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {changes} (seq bigint PRIMARY KEY, position bigint NOT NULL, "
    "org_id text NOT NULL, model text NOT NULL, key text NOT NULL, value text NOT NULL)",
    "CREATE INDEX IF NOT EXISTS {ix_changes} ON {changes} (org_id, seq)",
)


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _keyed(batch: Batch) -> list[tuple[int, tuple[str, ...], CountDelta | UserDelta]]:
    """Each delta with its event's position and its row's key: (org, metric, day, label) for
    a daily count, (org, user) for a user."""
    orgs: dict[UUID, str] = {}
    days: dict[date, str] = {}
    keyed: list[tuple[int, tuple[str, ...], CountDelta | UserDelta]] = []
    for position, delta in batch.deltas:
        org = orgs.get(delta.org_id)
        if org is None:
            org = orgs[delta.org_id] = str(delta.org_id)
        if type(delta) is CountDelta:
            day = days.get(delta.day)
            if day is None:
                day = days[delta.day] = delta.day.isoformat()
            keyed.append((position, (org, delta.metric, day, delta.label), delta))
        else:
            assert isinstance(delta, UserDelta)
            keyed.append((position, (org, delta.user_id), delta))
    return keyed


class _SqlAnalytics(AnalyticsView):
    """The analytics logic over the shared plumbing (`q`, `select`, `execute`, `cursor`)."""

    table_prefix = "analytics"
    table_keys: tuple[str, ...] = TABLE_KEYS

    # provided by the plumbing mixins
    q: Any
    select: Any
    execute: Any
    execute_many: Any
    cursor: Any
    rows: Any
    track_in: Any
    insert_rows: Any
    upsert_rows: Any
    select_keys: Any
    empty: Any

    def subjects(self, ids: Collection[UUID]) -> dict[UUID, Tracked]:
        keys = [(str(i),) for i in ids]
        found: dict[UUID, Tracked] = {}
        with self.cursor(commit=False) as c:
            for r in self.select_keys(
                c, "subjects", SUBJECT_KEY, "org_id, kind, user_id, method, state", keys
            ):
                subject = Tracked(UUID(r[0]), UUID(r[1]), r[2], r[3], r[4], r[5])
                found[subject.aggregate_id] = subject
        return found

    def apply(self, batch: Batch, tracking: Tracking, *, first: int) -> None:
        with self.cursor(commit=True) as c:
            self.track_in(c, tracking, first=first)  # first: the batch's exclusive claim
            self.upsert_rows(
                c,
                "subjects",
                SUBJECT_COLUMNS,
                [
                    (str(s.aggregate_id), str(s.org_id), s.kind, s.user_id, s.method, s.state)
                    for s in batch.subjects.values()
                ],
                conflict="aggregate_id",
                update=("method", "state"),
            )
            self.execute(c, "SELECT COALESCE(MAX(seq), 0) AS last FROM {changes}")
            seq = int(self.rows(c)[0][0])
            keyed = _keyed(batch)
            # the batch's current rows in two queries, not one per row (a rebuild hot spot)
            counts = self._current_counts(c, {k for _, k, _ in keyed if len(k) == 4})
            users = self._current_users(c, {k for _, k, _ in keyed if len(k) == 2})
            count_keys: dict[tuple[str, ...], str] = {}
            user_keys: dict[tuple[str, ...], str] = {}
            changes = []
            for position, key, delta in keyed:
                seq += 1
                org = key[0]
                if type(delta) is CountDelta:
                    value = counts[key] = counts[key] + delta.delta
                    text = count_keys.get(key)
                    if text is None:
                        text = count_keys[key] = _json(
                            {"day": key[2], "metric": delta.metric, "label": delta.label}
                        )
                    changes.append((seq, position, org, "daily", text, f'{{"value":{value}}}'))
                    continue
                assert isinstance(delta, UserDelta)
                active, resistant = users[key]
                active += delta.active
                resistant += delta.phishing_resistant
                users[key] = (active, resistant)
                text = user_keys.get(key)
                if text is None:
                    text = user_keys[key] = _json({"user_id": delta.user_id})
                changes.append(
                    (
                        seq,
                        position,
                        org,
                        "user",
                        text,
                        f'{{"active":{active},"phishing_resistant":{resistant}}}',
                    )
                )
            self.upsert_rows(
                c,
                "counts",
                COUNT_COLUMNS,
                [(*k, v) for k, v in counts.items()],
                conflict="org_id, metric, day, label",
                update=("value",),
            )
            self.upsert_rows(
                c,
                "users",
                USER_COLUMNS,
                [(*k, *v) for k, v in users.items()],
                conflict="org_id, user_id",
                update=("active", "phishing_resistant"),
            )
            self.insert_rows(c, "changes", CHANGE_COLUMNS, changes)

    def _current_counts(self, c: Any, keys: set[tuple[str, ...]]) -> dict[tuple[str, ...], int]:
        """The stored value of every daily count in `keys` (0 when new)."""
        ordered = sorted(keys)
        found = dict.fromkeys(ordered, 0)
        for r in self.select_keys(c, "counts", COUNT_COLUMNS[:4], "value", ordered):
            found[(r[0], r[1], r[2], r[3])] = int(r[4])
        return found

    def _current_users(
        self, c: Any, keys: set[tuple[str, ...]]
    ) -> dict[tuple[str, ...], tuple[int, int]]:
        """The stored authenticator counts of every user in `keys` ((0, 0) when new)."""
        ordered = sorted(keys)
        found = dict.fromkeys(ordered, (0, 0))
        for r in self.select_keys(
            c, "users", USER_COLUMNS[:2], "active, phishing_resistant", ordered
        ):
            found[(r[0], r[1])] = (int(r[2]), int(r[3]))
        return found

    def daily(
        self, org_id: UUID, metrics: Collection[str], *, since: date | None, until: date | None
    ) -> list[DailyCount]:
        if not metrics:
            return []
        clauses = [f"org_id = %s AND metric IN ({','.join(['%s'] * len(metrics))})"]
        params: list[Any] = [str(org_id), *metrics]
        if since is not None:
            clauses.append("day >= %s")
            params.append(since.isoformat())
        if until is not None:
            clauses.append("day <= %s")
            params.append(until.isoformat())
        rows = self.select(
            "SELECT day, metric, label, value FROM {counts} WHERE "  # noqa: S608
            + " AND ".join(clauses)
            + " ORDER BY day, metric, label",
            params,
        )
        return [DailyCount(date.fromisoformat(r[0]), r[1], r[2], int(r[3])) for r in rows]

    def coverage(self, org_id: UUID) -> Coverage:
        rows = self.select(
            "SELECT COUNT(*) AS users, "  # named: PostgreSQL rows are dicts by column name
            "COALESCE(SUM(CASE WHEN active > 0 THEN 1 ELSE 0 END), 0) AS covered, "
            "COALESCE(SUM(CASE WHEN phishing_resistant > 0 THEN 1 ELSE 0 END), 0) AS resistant "
            "FROM {users} WHERE org_id = %s",
            [str(org_id)],
        )
        users, active, resistant = rows[0]
        return Coverage(int(users), int(active), int(resistant))

    def changes_after(self, seq: int, *, org_id: UUID, limit: int) -> list[Change]:
        rows = self.select(
            "SELECT seq, position, org_id, model, key, value FROM {changes} "
            "WHERE org_id = %s AND seq > %s ORDER BY seq LIMIT %s",
            [str(org_id), seq, limit],
        )
        return [
            Change(int(r[0]), int(r[1]), UUID(r[2]), r[3], json.loads(r[4]), json.loads(r[5]))
            for r in rows
        ]

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        order = {
            "counts": "org_id, metric, day, label",
            "users": "org_id, user_id",
            "subjects": "aggregate_id",
            "changes": "seq",
        }
        return {
            key: self.select(f"SELECT * FROM {{{key}}} ORDER BY {columns}")  # noqa: S608
            for key, columns in order.items()
        }

    def reset(self) -> None:
        with self.cursor(commit=True) as c:
            self.empty(c, TABLE_KEYS)
            self.execute(c, "DELETE FROM {tracking} WHERE application_name <> '__migration__'")


class SqliteAnalyticsView(_SqlAnalytics, SqliteViewPlumbing):
    """Analytics tables in their own SQLite file (`tessera.analytics.db`)."""

    close = SqliteViewPlumbing.close

    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            *self.create_view_tables(CREATE_STATEMENTS),
        ]


class PostgresAnalyticsView(_SqlAnalytics, PostgresViewPlumbing):
    """Analytics tables beside the events: `analytics_counts`, `_users`, `_subjects`,
    `_changes` and `analytics_tracking`."""

    close = PostgresViewPlumbing.close

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.sql_create_statements.extend(self.create_view_tables(CREATE_STATEMENTS))
