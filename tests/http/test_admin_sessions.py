"""Admin sessions in the database: shared by server processes, kept across restarts, expired
by the query itself; and an administrator's removal, which ends their sessions at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from litestar.testing import TestClient

from adapters.admin_sessions import InMemoryAdminSessionStore, SqlAdminSessionStore
from adapters.persistence import Database
from application.administrators import (
    ABSOLUTE_TIMEOUT,
    IDLE_TIMEOUT,
    AdminIdentity,
    AdminSession,
    AdminSessionStore,
    hash_token,
)
from application.audit import AuditQuery
from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from tests.conftest import PG_URL
from tests.fakes import FakeClock
from tests.helpers import totp
from tests.http.test_admin import _enrol, _field, _sign_in, web  # noqa: F401  (fixture)

COOKIE = "__Host-tessera-admin"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AdminSessionStore]:
    if request.param == "memory":
        yield InMemoryAdminSessionStore()
    elif request.param == "sqlite":
        yield SqlAdminSessionStore(Database.from_url(f"sqlite:///{tmp_path / 'tessera.db'}"))
    else:
        schema = request.getfixturevalue("pg_schema")
        database = Database.from_url(f"{PG_URL}?schema={schema}")
        database.prepare()
        yield SqlAdminSessionStore(database)


def _session(clock: FakeClock, org_id: UUID | None = None, user_id: str = "root") -> AdminSession:
    now = clock.now()
    identity = AdminIdentity(org_id or uuid4(), user_id, 2, ("pwd", "otp", "mfa"), now)
    return AdminSession(identity, "csrf-token", created_at=now, last_seen=now)


def _touch(store: AdminSessionStore, key: str, clock: FakeClock) -> AdminSession | None:
    return store.touch(key, now=clock.now(), idle=IDLE_TIMEOUT, absolute=ABSOLUTE_TIMEOUT)


def test_a_stored_session_comes_back_whole_and_touched(store: AdminSessionStore) -> None:
    clock = FakeClock()
    session = _session(clock)
    store.put("k1", session)
    clock.advance(60)
    touched = _touch(store, "k1", clock)
    assert touched == replace(session, last_seen=clock.now())
    assert _touch(store, "unknown", clock) is None


def test_idle_and_absolute_expiry_are_enforced_by_the_store(store: AdminSessionStore) -> None:
    clock = FakeClock()
    start = clock.now()
    store.put("idle", _session(clock))
    store.put("busy", _session(clock))
    clock.advance(IDLE_TIMEOUT.total_seconds() - 1)
    assert _touch(store, "busy", clock) is not None
    clock.advance(1)
    assert _touch(store, "idle", clock) is None  # exactly 15 minutes idle
    assert _touch(store, "idle", clock) is None  # and gone
    while clock.now() + timedelta(minutes=10) < start + ABSOLUTE_TIMEOUT:
        clock.advance(10 * 60)
        assert _touch(store, "busy", clock) is not None
    clock.current = start + ABSOLUTE_TIMEOUT  # 12 hours, however busy
    assert _touch(store, "busy", clock) is None


def test_ending_an_administrators_sessions_leaves_the_others(store: AdminSessionStore) -> None:
    clock = FakeClock()
    org = uuid4()
    store.put("a1", _session(clock, org, "alice"))
    store.put("a2", _session(clock, org, "alice"))
    store.put("b1", _session(clock, org, "bob"))
    store.put("other-org", _session(clock, uuid4(), "alice"))
    assert store.delete_for(org, "alice") == 2
    assert _touch(store, "a1", clock) is None and _touch(store, "a2", clock) is None
    assert _touch(store, "b1", clock) is not None
    assert _touch(store, "other-org", clock) is not None


def test_a_purge_deletes_only_expired_sessions(store: AdminSessionStore) -> None:
    clock = FakeClock()
    store.put("old", _session(clock))
    clock.advance(IDLE_TIMEOUT.total_seconds())
    store.put("new", _session(clock))
    assert store.purge(now=clock.now(), idle=IDLE_TIMEOUT, absolute=ABSOLUTE_TIMEOUT) == 1
    assert _touch(store, "new", clock) is not None


def _rows(container: Container) -> list[tuple[Any, ...]]:
    database = container.database()
    if database.kind == "sqlite":
        with sqlite3.connect(database.sqlite_path) as db:
            return db.execute("SELECT * FROM admin_sessions").fetchall()
    with psycopg.connect(database.conninfo) as conn:
        return conn.execute(f'SELECT * FROM "{database.schema}".admin_sessions').fetchall()


def test_only_the_hash_of_a_session_id_is_stored(container: Container, clock: FakeClock) -> None:
    sessions = container.admin_sessions()
    identity = AdminIdentity(uuid4(), "root", 2, ("pwd", "otp"), clock.now())
    session_id, _ = sessions.open(identity)
    dump = repr(_rows(container))
    assert session_id not in dump and hash_token(session_id) in dump


def _second_server(container: Container, clock: FakeClock) -> Container:
    """Another server process on the same database: nothing shared in memory."""
    other = build_container(replace(container.settings()))
    other.clock.override(clock)
    return other


def test_a_session_opened_by_one_server_resumes_on_another_and_after_a_restart(
    web: TestClient,  # type: ignore[type-arg]  # noqa: F811
    container: Container,
    clock: FakeClock,
    org: Any,
) -> None:
    _enrol(web, container, clock, org.org_id)
    cookie = web.cookies.get(COOKIE)
    assert cookie and web.get("/admin").status_code == 200
    other = _second_server(container, clock)
    try:
        with TestClient(app=create_app(other), base_url="https://testserver.local") as second:
            second.cookies.set(COOKIE, cookie)
            assert second.get("/admin/audit").status_code == 200
            clock.advance(IDLE_TIMEOUT.total_seconds())
            ended = second.get("/admin/audit", follow_redirects=False)
            assert ended.status_code == 303  # idle on every server alike
        assert web.get("/admin", follow_redirects=False).status_code == 303
    finally:
        _close(other)


def _close(c: Container) -> None:
    c.identity_app().close()
    c.audit_view().close()
    c.analytics_view().close()
    c.webhook_outbox().close()


def test_an_administrator_removed_by_another_is_signed_out_and_cannot_sign_in_again(
    web: TestClient,  # type: ignore[type-arg]  # noqa: F811
    container: Container,
    clock: FakeClock,
    org: Any,
) -> None:
    _enrol(web, container, clock, org.org_id)  # root
    with TestClient(app=create_app(container), base_url="https://testserver.local") as bob:
        key = _enrol(bob, container, clock, org.org_id, user_id="bob")
        assert bob.get("/admin").status_code == 200
        page = web.get("/admin/administrators")
        assert page.text.count('class="admin-row"') == 2 and "bob" in page.text
        removed = web.post(
            "/admin/administrators/remove",
            data={"csrf_token": _field(page.text, "csrf_token"), "user_id": "bob"},
        )
        assert removed.status_code == 200 and 'id="removed"' in removed.text
        assert removed.text.count('class="admin-row"') == 1
        ended = bob.get("/admin", follow_redirects=False)
        assert ended.status_code == 303 and ended.headers["location"] == "/admin/login"
        bob.cookies.clear()
        refused = _sign_in(bob, org.org_id, totp(key, clock.now()), user_id="bob")
        assert refused.status_code == 401
    container.audit_follower().catch_up()
    records = container.audit_view().query(
        AuditQuery(org_id=org.org_id, action="administrator.removed")
    )
    assert [(r.entry.user_id, r.entry.actor_type, r.entry.actor_id) for r in records] == [
        ("bob", "administrator", "root")
    ]


def test_an_administrator_cannot_remove_themselves_or_someone_unknown(
    web: TestClient,  # type: ignore[type-arg]  # noqa: F811
    container: Container,
    clock: FakeClock,
    org: Any,
) -> None:
    _enrol(web, container, clock, org.org_id)
    page = web.get("/admin/administrators")
    csrf = _field(page.text, "csrf_token")
    myself = web.post("/admin/administrators/remove", data={"csrf_token": csrf, "user_id": "root"})
    assert myself.status_code == 422 and "cannot remove themselves" in myself.text
    nobody = web.post("/admin/administrators/remove", data={"csrf_token": csrf, "user_id": "zed"})
    assert nobody.status_code == 404
    forged = web.post("/admin/administrators/remove", data={"user_id": "root"})
    assert forged.status_code == 403
    assert web.get("/admin").status_code == 200


def test_a_removed_administrator_appointed_again_enrols_afresh(
    web: TestClient,  # type: ignore[type-arg]  # noqa: F811
    container: Container,
    clock: FakeClock,
    org: Any,
) -> None:
    _enrol(web, container, clock, org.org_id)
    container.remove_administrator()(org_id=org.org_id, user_id="root", by="cli")
    assert web.get("/admin", follow_redirects=False).status_code == 303
    web.cookies.clear()
    key = _enrol(web, container, clock, org.org_id)  # a new link, password and authenticator
    assert web.get("/admin").status_code == 200
    container.audit_follower().catch_up()
    actions = [
        r.entry.action
        for r in container.audit_view().query(AuditQuery(org_id=org.org_id, limit=1000))
        if r.entry.action.startswith("administrator.")
    ]
    assert actions[-5:] == [
        "administrator.removed",
        "administrator.reappointed",
        "administrator.link_issued",
        "administrator.enrolled",
        "administrator.signed_in",
    ]
    assert key
