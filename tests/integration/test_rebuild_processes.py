"""`projections rebuild` in one process per read model gives what one process gives."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from application.audit import verify_chain
from application.errors import TesseraError
from entrypoints.container import Container
from entrypoints.rebuild import rebuild
from tests.application.test_audit_projection import Story

pytestmark = pytest.mark.slow


def _models(container: Container) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    audit = container.audit_view()
    records = [r.as_dict() for org in sorted(audit.heads(), key=str) for r in audit.chain(org)]
    return records, container.analytics_view().dump()


def test_a_rebuild_in_processes_equals_one_in_a_single_process_and_the_live_models(
    container: Container,
) -> None:
    story = Story(container)
    for user in ("alice", "bob", "carol"):
        story.enrol(user)
        story.confirm(user)
    for step in range(12):
        story.clock.advance(31)
        with contextlib.suppress(TesseraError):
            story.login(("alice", "bob", "carol")[step % 3], step % 4 != 0)
    story.policy(5)
    story.erase("bob")
    head = container.identity_app().recorder.max_notification_id()
    for follower in container.projection_followers():
        follower.catch_up()
    live = _models(container)

    settings = container.settings()
    progress: list[tuple[int, int]] = []
    in_processes = rebuild(
        settings, container=container, parallel=True, batch_size=7, progress=_record(progress)
    )
    assert {name: r.applied for name, r in in_processes.items()} == {
        "audit": head,
        "analytics": head,
    }
    assert all(r.position == head and r.peak_kib > 0 for r in in_processes.values())
    assert progress[-1] == (head, head)
    assert _models(container) == live
    assert verify_chain(container.audit_view()) == []

    in_one = rebuild(settings, container=container, parallel=False, batch_size=7)
    assert {name: r.applied for name, r in in_one.items()} == {"audit": head, "analytics": head}
    assert _models(container) == live


def _record(into: list[tuple[int, int]]) -> Any:
    return lambda position, head: into.append((position, head))
