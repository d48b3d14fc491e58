"""The analytics projection on the in-memory store: rebuilds equal the live model; numbers."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, Tracking
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.persistence import Database
from application.analytics import (
    AUTH_ATTEMPT,
    AUTH_FAILED,
    AUTH_SUCCESS,
    ENROLMENT_ADDED,
    ENROLMENT_REMOVED,
    RISK,
    STEP_UP,
    AnalyticsProjection,
    AnalyticsView,
)
from application.authentications import Caller
from application.errors import TesseraError
from application.ports import RequestContext
from application.projections import MapperEventReader, ProjectionFollower
from entrypoints.container import Container
from tests.application.test_audit_projection import Story, memory  # noqa: F401  (fixture)
from tests.helpers import totp


def _view() -> AnalyticsView:
    return Database(kind="memory").analytics_view()


class AnalyticsStory(Story):
    def step_up(self, user: str) -> None:
        key = self.secrets.get(user, (None, b"x" * 20))[1]
        self.c.start_authentication()(
            caller=Caller(org_id=self.org.org_id, client_id="k"),
            user_id=user,
            context=RequestContext(ip="203.0.113.9", user_agent="pytest"),
            operation="payment",
            method="totp",
            code=totp(key, self.clock.now()),
            enrolment_id=None,
        )


users = st.sampled_from(["alice", "bob", "carol", "dave"])
steps = st.lists(
    st.one_of(
        st.tuples(st.just("enrol"), users),
        st.tuples(st.just("confirm"), users),
        st.tuples(st.just("login"), users, st.booleans()),
        st.tuples(st.just("step_up"), users),
        st.tuples(st.just("unlock"), users),
        st.tuples(st.just("policy"), st.integers(3, 12)),
        st.tuples(st.just("erase"), users),
        st.tuples(st.just("wait"), st.integers(1, 40_000)),
    ),
    min_size=1,
    max_size=60,
)


def _play(story: AnalyticsStory, step: tuple[Any, ...]) -> None:
    if step[0] == "wait":
        story.clock.advance(step[1])
        return
    with contextlib.suppress(TesseraError):
        getattr(story, step[0])(*step[1:])


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=steps, batch=st.integers(1, 50))
def test_rebuilt_analytics_equal_the_live_ones_after_a_random_history(
    memory: Container,  # noqa: F811
    history: list[tuple[Any, ...]],
    batch: int,
) -> None:
    memory.reset_singletons()
    app = memory.identity_app()
    live_view = _view()
    live = ProjectionFollower(app, AnalyticsProjection(live_view), batch_size=3)
    story = AnalyticsStory(memory)
    for step in history:
        _play(story, step)
        live.catch_up()
    rebuilt_view = _view()
    ProjectionFollower(app, AnalyticsProjection(rebuilt_view), batch_size=batch).catch_up()
    assert rebuilt_view.dump() == live_view.dump()
    assert live_view.max_tracking_id("identity") == app.recorder.max_notification_id()
    # the model agrees with the aggregates it summarises
    org = story.org.org_id
    coverage = live_view.coverage(org)
    active_users = {
        e.user_id
        for user in ("alice", "bob", "carol", "dave")
        if (account := app.find_account(org, user)) is not None
        for e in app.enrolments_of(account)
        if e.status == "active"
    }
    assert coverage.with_authenticator == len(active_users)
    assert coverage.with_phishing_resistant == 0
    counts = live_view.daily(org, (ENROLMENT_ADDED, ENROLMENT_REMOVED), since=None, until=None)
    added = sum(c.value for c in counts if c.metric == ENROLMENT_ADDED)
    removed = sum(c.value for c in counts if c.metric == ENROLMENT_REMOVED)
    assert added - removed == sum(
        len([e for e in app.enrolments_of(a) if e.status == "active"])
        for user in ("alice", "bob", "carol", "dave")
        if (a := app.find_account(org, user)) is not None
    )
    assert _replayed_feed(live_view) == _tables(live_view)
    live_view.reset()
    live.catch_up()
    assert live_view.dump() == rebuilt_view.dump()


def _replayed_feed(view: AnalyticsView) -> dict[tuple[Any, ...], Any]:
    """The rows a feed consumer ends up with: the last value of each key it was sent."""
    rows: dict[tuple[Any, ...], Any] = {}
    for _, _, org, model, key, value in view.dump()["changes"]:
        rows[(org, model, key)] = json.loads(value)
    return rows


def _tables(view: AnalyticsView) -> dict[tuple[Any, ...], Any]:
    dump = view.dump()
    rows: dict[tuple[Any, ...], Any] = {}
    for org, day, metric, label, value in dump["counts"]:
        key = json.dumps({"day": day, "label": label, "metric": metric}, separators=(",", ":"))
        rows[(org, "daily", key)] = {"value": value}
    for org, user_id, active, resistant in dump["users"]:
        key = json.dumps({"user_id": user_id}, separators=(",", ":"))
        rows[(org, "user", key)] = {"active": active, "phishing_resistant": resistant}
    return rows


def test_counts_of_a_small_history(memory: Container) -> None:  # noqa: F811
    memory.reset_singletons()
    story = AnalyticsStory(memory)
    story.enrol("alice")
    story.confirm("alice")
    story.enrol("bob")  # never confirmed
    story.clock.advance(30)
    story.login("alice", True)
    story.clock.advance(30)
    _play(story, ("login", "alice", False))
    story.clock.advance(30)
    story.step_up("alice")
    view = _view()
    ProjectionFollower(memory.identity_app(), AnalyticsProjection(view)).catch_up()
    org = story.org.org_id
    coverage = view.coverage(org)
    assert (coverage.users, coverage.with_authenticator) == (2, 1)
    metrics = (ENROLMENT_ADDED, AUTH_ATTEMPT, AUTH_SUCCESS, AUTH_FAILED, RISK, STEP_UP)
    totals: dict[tuple[str, str], int] = {}
    for row in view.daily(org, metrics, since=None, until=None):
        totals[(row.metric, row.label)] = totals.get((row.metric, row.label), 0) + row.value
    assert totals == {
        (ENROLMENT_ADDED, "totp"): 1,
        (AUTH_ATTEMPT, "totp"): 3,
        (AUTH_SUCCESS, "totp"): 2,
        (AUTH_FAILED, "totp"): 1,
        (RISK, "low"): 3,
        (STEP_UP, "payment"): 1,
    }
    changes = view.changes_after(0, org_id=org, limit=1000)
    assert [c.seq for c in changes] == list(range(1, len(changes) + 1))
    later = view.changes_after(changes[4].seq, org_id=org, limit=1000)
    assert later == changes[5:]


def test_a_batch_is_applied_once_even_when_offered_twice(memory: Container) -> None:  # noqa: F811
    memory.reset_singletons()
    story = AnalyticsStory(memory)
    story.enrol("alice")
    app = memory.identity_app()
    batch = [
        (app.mapper.to_domain_event(n), Tracking("identity", n.id))
        for n in app.recorder.select_notifications(start=1, limit=100)
    ]
    view = _view()
    projection = AnalyticsProjection(view)
    projection.process_batch(batch)
    before = view.dump()
    with pytest.raises(IntegrityError):
        projection.process_batch(batch)
    assert view.dump() == before


def test_a_longer_batch_overlapping_an_applied_one_is_refused_whole(memory: Container) -> None:  # noqa: F811
    memory.reset_singletons()
    story = AnalyticsStory(memory)
    story.enrol("alice")
    story.confirm("alice")
    story.clock.advance(30)
    story.login("alice", True)
    app = memory.identity_app()
    events = MapperEventReader(app).read(start=1, limit=100)
    view = _view()
    projection = AnalyticsProjection(view)
    projection.process_batch(events[:5])
    before = view.dump()
    with pytest.raises(IntegrityError):
        projection.process_batch(events[:9])
    assert view.dump() == before
    projection.process_batch(events[5:])
    reference = _view()
    ProjectionFollower(app, AnalyticsProjection(reference)).catch_up()
    assert view.dump() == reference.dump()
