"""Shared fixtures: one container per test on SQLite and PostgreSQL (one parametrised fixture)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from litestar.testing import TestClient

from entrypoints.config import Settings
from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from tests.fakes import FakeClock

PG_URL = os.environ.get("TESSERA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"


def postgres_available() -> bool:
    try:
        with psycopg.connect(PG_URL.split("?")[0], connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def require_postgres() -> None:
    """Skip with a reason outside CI; in CI a missing PostgreSQL is a failure, never a skip."""
    if postgres_available():
        return
    if IN_CI:
        pytest.fail("PostgreSQL must be reachable in CI at " + PG_URL)
    pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (run `make postgres`)")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    require_postgres()
    schema = "test_" + uuid.uuid4().hex[:12]
    yield schema
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _settings(home: Path, database_url: str) -> Settings:
    base = Settings.from_env({"TESSERA_HOME": str(home)})
    return replace(base, database_url=database_url, pool_size=4, projections="inline")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tessera.db'}"
        return
    schema = request.getfixturevalue("pg_schema")
    yield f"{PG_URL}?schema={schema}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def container(store_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Container]:
    c = build_container(_settings(tmp_path, store_url))
    c.clock.override(clock)
    yield c
    c.identity_app().close()
    c.audit_view().close()
    c.analytics_view().close()
    c.webhook_outbox().close()
    store = c.data_keys()
    if hasattr(store, "close"):
        store.close()


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(app=create_app(container)) as test_client:
        yield test_client


@pytest.fixture
def org(container: Container):  # type: ignore[no-untyped-def]
    return container.create_organisation()(name="Acme")


@pytest.fixture
def headers(org) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {org.api_key}"}


@pytest.fixture
def admin_headers(org) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {org.admin_api_key}"}
