"""On SQLite and PostgreSQL, through the container's fast reader: rebuilt read models equal the
ones followed live in small batches, after random histories."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.analytics import AnalyticsProjection
from application.audit import AuditTrailProjection, AuditTrailView, verify_chain
from application.errors import TesseraError
from application.projections import ProjectionFollower, catch_up_together
from entrypoints.container import Container
from tests.application.test_analytics_projection import AnalyticsStory

users = st.sampled_from(["alice", "bob", "carol"])
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
    max_size=25,
)


def _trail(view: AuditTrailView) -> list[dict[str, Any]]:
    return [r.as_dict() for org in sorted(view.heads(), key=str) for r in view.chain(org)]


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=steps, batch=st.integers(1, 40))
def test_rebuilt_models_equal_the_live_ones_on_both_stores(
    container: Container, history: list[tuple[Any, ...]], batch: int
) -> None:
    """Each example adds a history (a new organisation) to the same store; the live models
    follow every step three events at a time, the rebuilt ones start empty each example."""
    app, reader = container.identity_app(), container.event_reader()
    live = [container.audit_follower(), container.analytics_follower()]
    story = AnalyticsStory(container)
    for step in history:
        if step[0] == "wait":
            story.clock.advance(step[1])
        else:
            with contextlib.suppress(TesseraError):
                getattr(story, step[0])(*step[1:])
        for follower in live:
            follower.catch_up(batch_size=3)
    database = container.database()
    audit = database.audit_view(name="rebuilt_audit")
    analytics = database.analytics_view(name="rebuilt_analytics")
    try:
        audit.reset()
        analytics.reset()
        rebuilt = [
            ProjectionFollower(app, AuditTrailProjection(audit), reader=reader),
            ProjectionFollower(app, AnalyticsProjection(analytics), reader=reader),
        ]
        applied = catch_up_together(rebuilt, batch_size=batch)
        head = app.recorder.max_notification_id()
        assert applied == {"audit": head, "analytics": head}
        assert _trail(audit) == _trail(container.audit_view())
        assert analytics.dump() == container.analytics_view().dump()
        assert verify_chain(audit) == []
    finally:
        audit.close()
        analytics.close()
