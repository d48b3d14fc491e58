"""The audit projection on the in-memory store: exactly once across crashes, rebuilds equal."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from eventsourcing.persistence import IntegrityError, Tracking
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import audit_store
from adapters.persistence import Database
from adapters.projection_store import claim_sqlite
from application.audit import (
    AuditQuery,
    AuditTrailProjection,
    AuditTrailView,
    verify_chain,
)
from application.authentications import Caller
from application.errors import TesseraError
from application.organisations import Principal
from application.ports import RequestContext
from application.projections import MapperEventReader, ProjectionFollower
from domain.account import Account
from entrypoints.config import Settings
from entrypoints.container import Container, build_container
from tests.fakes import FakeClock
from tests.helpers import b32decode, totp


@pytest.fixture(scope="module")
def memory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    home: Path = tmp_path_factory.mktemp("home")
    base = Settings.from_env({"TESSERA_HOME": str(home)})
    c = build_container(replace(base, database_url="memory://", projections="inline"))
    c.clock.override(FakeClock())
    c.signing_keys()
    yield c


def _fresh(c: Container) -> None:
    """A new empty event store for each example, same keys and clock."""
    c.reset_singletons()


def _view() -> AuditTrailView:
    return Database(kind="memory").audit_view()


def _rows(view: AuditTrailView) -> list[dict[str, Any]]:
    return [r.as_dict() for org in sorted(view.heads(), key=str) for r in view.chain(org)]


class Story:
    """Drives the use cases the way the HTTP API does."""

    def __init__(self, c: Container) -> None:
        self.c, self.clock = c, c.clock()
        self.org = c.create_organisation()(name="Acme")
        self.admin = Principal(self.org.org_id, _key_id(c, self.org.admin_api_key), "admin")
        self.secrets: dict[str, tuple[Any, bytes]] = {}
        self.seen_codes: list[str] = []
        self.sealed: list[str] = []

    def enrol(self, user: str) -> None:
        created = self.c.start_enrolment()(org_id=self.org.org_id, user_id=user, method="totp")
        key = b32decode(created.secret_b32)
        self.secrets[user] = (created.enrolment_id, key)
        enrolment = self.c.identity_app().get_enrolment(
            created.enrolment_id, org_id=self.org.org_id
        )
        self.sealed.append(enrolment.secret_ref)
        self.sealed.append(created.secret_b32)

    def confirm(self, user: str) -> None:
        if user in self.secrets:
            enrolment_id, key = self.secrets[user]
            code = totp(key, self.clock.now())
            self.seen_codes.append(code)
            self.c.confirm_enrolment()(org_id=self.org.org_id, enrolment_id=enrolment_id, code=code)

    def login(self, user: str, right: bool) -> None:
        key = self.secrets.get(user, (None, b"x" * 20))[1]
        code = totp(key, self.clock.now()) if right else "000000"
        self.seen_codes.append(code)
        caller = Caller(org_id=self.org.org_id, client_id="k")
        self.c.start_authentication()(
            caller=caller,
            user_id=user,
            context=RequestContext(ip="203.0.113.9", user_agent="pytest"),
            operation=None,
            method="totp",
            code=code,
            enrolment_id=None,
        )

    def unlock(self, user: str) -> None:
        if user in self.secrets:
            self.c.unlock_enrolment()(
                org_id=self.org.org_id,
                enrolment_id=self.secrets[user][0],
                by=f"key:{self.admin.key_id}",
            )

    def policy(self, attempts: int) -> None:
        self.c.change_policy()(principal=self.admin, changes={"max_failed_attempts": attempts})

    def erase(self, user: str) -> None:
        self.c.erase_user()(org_id=self.org.org_id, user_id=user, by=f"key:{self.admin.key_id}")
        self.secrets.pop(user, None)


def _key_id(c: Container, api_key: str) -> Any:
    from application.organisations import hash_api_key

    found = c.identity_app().find_api_key(hash_api_key(api_key))
    assert found is not None
    return found.id


users = st.sampled_from(["alice", "bob", "carol"])
steps = st.lists(
    st.one_of(
        st.tuples(st.just("enrol"), users),
        st.tuples(st.just("confirm"), users),
        st.tuples(st.just("login"), users, st.booleans()),
        st.tuples(st.just("unlock"), users),
        st.tuples(st.just("policy"), st.integers(3, 12)),
        st.tuples(st.just("erase"), users),
        st.tuples(st.just("wait"), st.integers(1, 120)),
    ),
    min_size=1,
    max_size=40,
)


def _play(story: Story, step: tuple[Any, ...]) -> None:
    if step[0] == "wait":
        story.clock.advance(step[1])
        return
    with contextlib.suppress(TesseraError):  # refusals are events worth auditing too
        getattr(story, step[0])(*step[1:])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=steps, batch=st.integers(1, 50))
def test_a_rebuilt_trail_equals_the_live_one_after_a_random_history(
    memory: Container, history: list[tuple[Any, ...]], batch: int
) -> None:
    _fresh(memory)
    app = memory.identity_app()
    live_view = _view()
    live = ProjectionFollower(app, AuditTrailProjection(live_view), batch_size=3)
    story = Story(memory)
    for step in history:
        _play(story, step)
        live.catch_up()  # the live trail follows every step, in small batches
    rebuilt_view = _view()
    ProjectionFollower(app, AuditTrailProjection(rebuilt_view), batch_size=batch).catch_up()
    assert _rows(rebuilt_view) == _rows(live_view)
    assert live_view.max_tracking_id("identity") == app.recorder.max_notification_id()
    assert len(_rows(live_view)) == app.recorder.max_notification_id()
    assert verify_chain(live_view) == []
    dump = json.dumps(_rows(live_view))
    for secret in story.sealed + [c for c in story.seen_codes if c != "000000"]:
        assert secret not in dump
    live_view.reset()
    live.catch_up()
    assert _rows(live_view) == _rows(rebuilt_view)


class CrashingView:
    """Wraps a view and fails inside `append` once, after the rows are written, before commit."""

    def __init__(self, view: AuditTrailView, crash_at_batch: int) -> None:
        self.view, self.crash_at_batch, self.batches = view, crash_at_batch, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.view, name)

    def append(self, entries: Any, subjects: Any, tracking: Tracking, *, first: int) -> None:
        self.batches += 1
        if self.batches != self.crash_at_batch:
            self.view.append(entries, subjects, tracking, first=first)
            return

        def claim_then_crash(cursor: Any, t: Tracking, *, first: int) -> None:
            claim_sqlite(cursor, t, first=first)
            raise RuntimeError("crash mid-batch")

        # the crash happens inside the transaction, after the tracking row is written
        with mock.patch.object(audit_store, "claim_sqlite", claim_then_crash):
            self.view.append(entries, subjects, tracking, first=first)


def test_a_projection_that_crashes_mid_batch_resumes_without_double_counting(
    memory: Container,
) -> None:
    _fresh(memory)
    app = memory.identity_app()
    for n in range(6):
        memory.create_organisation()(name=f"Org {n}")  # 4 events each
    reference = _view()
    ProjectionFollower(app, AuditTrailProjection(reference), batch_size=5).catch_up()

    view = _view()
    crashing = CrashingView(view, crash_at_batch=3)
    follower = ProjectionFollower(app, AuditTrailProjection(crashing), batch_size=5)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        follower.catch_up()
    assert follower.position() == 10 and len(_rows(view)) == 10  # batch 3 left nothing behind
    restarted = ProjectionFollower(app, AuditTrailProjection(view), batch_size=7)
    assert restarted.catch_up() == 14
    assert _rows(view) == _rows(reference) and len(_rows(view)) == 24
    assert verify_chain(view) == []


def test_a_batch_is_applied_once_even_when_offered_twice(memory: Container) -> None:
    _fresh(memory)
    memory.create_organisation()(name="Acme")
    view = _view()
    projection = AuditTrailProjection(view)
    app = memory.identity_app()
    batch = [
        (app.mapper.to_domain_event(n), Tracking("identity", n.id))
        for n in app.recorder.select_notifications(start=1, limit=10)
    ]
    projection.process_batch(batch)
    with pytest.raises(IntegrityError):
        projection.process_batch(batch)
    assert len(_rows(view)) == 4


def test_every_event_type_becomes_a_record_without_secret_or_code(memory: Container) -> None:
    _fresh(memory)
    story = Story(memory)
    story.enrol("alice")
    story.confirm("alice")
    story.clock.advance(30)
    story.login("alice", True)
    story.policy(3)
    for _ in range(3):
        story.clock.advance(1000)
        _play(story, ("login", "alice", False))
    story.unlock("alice")
    story.erase("alice")
    app = memory.identity_app()
    view = _view()
    ProjectionFollower(app, AuditTrailProjection(view)).catch_up()
    records = view.query(AuditQuery(org_id=story.org.org_id, limit=1000))
    actions = {r.entry.action for r in records}
    assert len(records) == app.recorder.max_notification_id()
    assert actions >= {
        "organisation.created",
        "policy.created",
        "policy.changed",
        "api_key.issued",
        "account.opened",
        "account.enrolment_added",
        "account.enrolment_removed",
        "account.failure_recorded",
        "account.failures_cleared",
        "enrolment.started",
        "enrolment.confirmed",
        "enrolment.code_rejected",
        "enrolment.locked",
        "enrolment.unlocked",
        "enrolment.revoked",
        "authentication.started",
        "authentication.factor_verified",
        "authentication.satisfied",
        "authentication.attempt_failed",
    }
    dump = json.dumps([r.as_dict() for r in records])
    for secret in story.sealed + [c for c in story.seen_codes if c != "000000"]:
        assert secret not in dump
    unlocked = next(r for r in records if r.entry.action == "enrolment.unlocked")
    assert unlocked.entry.actor_type == "administrator"
    assert unlocked.entry.actor_id == str(story.admin.key_id)
    assert Account.create_id(story.org.org_id, "alice") in {r.entry.subject_id for r in records}


def test_a_longer_batch_overlapping_an_applied_one_is_refused_whole(memory: Container) -> None:
    _fresh(memory)
    memory.create_organisation()(name="Acme")
    memory.create_organisation()(name="Globex")
    app = memory.identity_app()
    events = MapperEventReader(app).read(start=1, limit=100)
    view = _view()
    projection = AuditTrailProjection(view)
    projection.process_batch(events[:3])
    with pytest.raises(IntegrityError):
        projection.process_batch(events[:6])  # events 1-3 again, with 4-6
    assert len(_rows(view)) == 3
    projection.process_batch(events[3:])
    assert _rows(view) == _rows(_rebuilt(app))


def _rebuilt(app: Any) -> AuditTrailView:
    view = _view()
    ProjectionFollower(app, AuditTrailProjection(view)).catch_up()
    return view
