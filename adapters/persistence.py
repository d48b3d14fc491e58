"""Where events and data keys live: SQLite (embedded default), PostgreSQL, or memory."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, unquote, urlsplit

from eventsourcing.persistence import InfrastructureFactory, TrackingRecorder
from eventsourcing.utils import Environment

from adapters.analytics_store import PostgresAnalyticsView, SqliteAnalyticsView
from adapters.audit_store import PostgresAuditTrailView, SqliteAuditTrailView
from adapters.vault import (
    DataKeyStore,
    InMemoryDataKeyStore,
    PostgresDataKeyStore,
    SqliteDataKeyStore,
)
from adapters.webhook_store import PostgresWebhookOutboxView, SqliteWebhookOutboxView
from application.analytics import AnalyticsView
from application.audit import AuditTrailView
from application.webhooks import WebhookOutboxView


@dataclass(frozen=True, slots=True)
class Database:
    """A parsed TESSERA_DATABASE_URL: `sqlite:///PATH`, `postgresql://...` or `memory://`."""

    kind: str  # "sqlite" | "postgres" | "memory"
    sqlite_path: str = ""
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""
    schema: str = "public"

    @classmethod
    def from_url(cls, url: str) -> Database:
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            path = unquote(parts.path)
            if not path or path == "/":
                raise ValueError("sqlite URLs look like sqlite:///relative.db or sqlite:////abs.db")
            return cls(kind="sqlite", sqlite_path=path[1:] if path.startswith("/") else path)
        if parts.scheme in ("postgres", "postgresql"):
            query = parse_qs(parts.query)
            return cls(
                kind="postgres",
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 5432,
                user=unquote(parts.username or "postgres"),
                password=unquote(parts.password or ""),
                dbname=unquote(parts.path.lstrip("/")) or "postgres",
                schema=query.get("schema", ["public"])[0],
            )
        if parts.scheme == "memory":
            return cls(kind="memory")
        raise ValueError(f"unsupported database URL scheme {parts.scheme!r}")

    @property
    def conninfo(self) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=self.dbname,
        )

    def eventsourcing_env(
        self, *, create_tables: bool = True, pool_size: int = 5
    ) -> dict[str, str]:
        # Aggregates stay cached in memory and are fast-forwarded from the store on every get
        # (one query for newer events), so a get never replays a long history; copies are
        # handed out, so a refused command cannot corrupt the cache.
        cache = {"AGGREGATE_CACHE_MAXSIZE": "20000", "AGGREGATE_CACHE_FASTFORWARD": "y"}
        return cache | self._store_env(create_tables=create_tables, pool_size=pool_size)

    def _store_env(self, *, create_tables: bool, pool_size: int) -> dict[str, str]:
        if self.kind == "memory":
            return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
        if self.kind == "sqlite":
            Path(self.sqlite_path).parent.mkdir(parents=True, exist_ok=True)
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.sqlite_path,
                "SQLITE_LOCK_TIMEOUT": "30",
                "CREATE_TABLE": "true" if create_tables else "false",
            }
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_SCHEMA": self.schema,
            "POSTGRES_POOL_SIZE": str(pool_size),
            "POSTGRES_MAX_OVERFLOW": str(pool_size * 2),
            "POSTGRES_CONNECT_TIMEOUT": "10",
            "POSTGRES_LOCK_TIMEOUT": "5",
            "CREATE_TABLE": "true" if create_tables else "false",
        }

    def prepare(self) -> None:
        """Create the PostgreSQL schema if needed (tables are created by their owners)."""
        if self.kind != "postgres":
            return
        import psycopg
        from psycopg import sql

        # another process may create the schema at the same moment
        with (
            psycopg.connect(self.conninfo, autocommit=True) as conn,
            contextlib.suppress(psycopg.errors.UniqueViolation),
        ):
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )

    def data_key_store(self) -> DataKeyStore:
        if self.kind == "sqlite":
            return SqliteDataKeyStore(self.sqlite_path)
        if self.kind == "postgres":
            return PostgresDataKeyStore(self.conninfo, self.schema)
        return InMemoryDataKeyStore()

    def projection_sqlite_path(self, name: str) -> str:
        """SQLite keeps each projection in a file beside the events: `tessera.db` ->
        `tessera.audit.db` (its tracking table is always called `tracking`)."""
        path = Path(self.sqlite_path)
        return str(path.with_name(f"{path.stem}.{name}{path.suffix or '.db'}"))

    def _tracking_recorder(
        self,
        name: str,
        *,
        postgres_class: type[TrackingRecorder],
        sqlite_class: type[TrackingRecorder],
        pool_size: int,
        create_tables: bool,
        sqlite_path: str | None = None,
    ) -> TrackingRecorder:
        """A projection's view: tables `<name>_*` in the PostgreSQL schema; on SQLite its own
        file (the library always names SQLite's tracking table `tracking`); in memory a private
        shared-cache SQLite database."""
        if self.kind == "postgres":
            env = self._store_env(create_tables=create_tables, pool_size=pool_size)
            factory = InfrastructureFactory.construct(Environment(name, env))
            return factory.tracking_recorder(postgres_class)
        if self.kind == "sqlite":
            dbname = sqlite_path or self.projection_sqlite_path(name)
            Path(dbname).parent.mkdir(parents=True, exist_ok=True)
        else:
            dbname = f"file:tessera-{name}-{uuid.uuid4().hex}?mode=memory&cache=shared"
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": dbname,
            "SQLITE_LOCK_TIMEOUT": "30",
            "CREATE_TABLE": "true",
        }
        factory = InfrastructureFactory.construct(Environment(name, env))
        return factory.tracking_recorder(sqlite_class)

    def audit_view(
        self, *, name: str = "audit", sqlite_path: str | None = None, create_tables: bool = True
    ) -> AuditTrailView:
        """The audit trail's view: `<name>_tracking`, `_records`, `_heads`, `_subjects`."""
        view = self._tracking_recorder(
            name,
            postgres_class=PostgresAuditTrailView,
            sqlite_class=SqliteAuditTrailView,
            pool_size=2,
            create_tables=create_tables,
            sqlite_path=sqlite_path,
        )
        return cast(AuditTrailView, view)

    def analytics_view(
        self, *, name: str = "analytics", create_tables: bool = True
    ) -> AnalyticsView:
        """The analytics view: `<name>_tracking`, `_counts`, `_users`, `_subjects`, `_changes`."""
        view = self._tracking_recorder(
            name,
            postgres_class=PostgresAnalyticsView,
            sqlite_class=SqliteAnalyticsView,
            pool_size=2,
            create_tables=create_tables,
        )
        return cast(AnalyticsView, view)

    def webhook_outbox(self, *, create_tables: bool = True) -> WebhookOutboxView:
        """The webhook outbox: `webhooks_tracking`, `_subscriptions`, `_subjects`, `_outbox`,
        `_attempts`. One kept PostgreSQL connection; the overflow (2) covers the dispatcher and
        follower threads."""
        view = self._tracking_recorder(
            "webhooks",
            postgres_class=PostgresWebhookOutboxView,
            sqlite_class=SqliteWebhookOutboxView,
            pool_size=1,
            create_tables=create_tables,
        )
        return cast(WebhookOutboxView, view)
