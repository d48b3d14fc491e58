"""The PortalSession aggregate: one-time link, session timeouts, verification, replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.portal import (
    ABSOLUTE_TIMEOUT,
    IDLE_TIMEOUT,
    LINK_TTL,
    VERIFICATION_TTL,
    PortalError,
    PortalLinkError,
    PortalSession,
    PortalSessionClosedError,
)

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def _issued(return_url: str | None = None) -> PortalSession:
    return PortalSession.issue(
        link_hash="link", org_id=uuid4(), user_id="alice", return_url=return_url, by="key:x", at=T0
    )


def _redeemed() -> PortalSession:
    portal = _issued()
    portal.redeem("link", session_hash="session", at=T0)
    return portal


def test_the_id_derives_from_the_link_hash() -> None:
    assert _issued().id == PortalSession.create_id("link")
    assert PortalSession.create_id("link") != PortalSession.create_id("other")


def test_a_link_works_once_and_only_before_it_expires() -> None:
    late = _issued()
    with pytest.raises(PortalLinkError):
        late.redeem("link", session_hash="s", at=T0 + LINK_TTL)
    with pytest.raises(PortalLinkError):
        _issued().redeem("wrong", session_hash="s", at=T0)
    portal = _redeemed()
    with pytest.raises(PortalLinkError):
        portal.redeem("link", session_hash="again", at=T0)
    assert portal.session_hash == "session" and portal.link_hash is None


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "//evil.example", "http://", "https:///x", "ftp://a", "x" * 9]
)
def test_a_return_url_must_be_an_absolute_web_url(url: str) -> None:
    with pytest.raises(PortalError):
        _issued(url)


def test_user_ids_must_be_printable() -> None:
    with pytest.raises(PortalError):
        PortalSession.issue(
            link_hash="h", org_id=uuid4(), user_id="a\nb", return_url=None, by="k", at=T0
        )


def test_the_session_ends_when_idle_and_records_why() -> None:
    portal = _redeemed()
    portal.resume("session", at=T0 + IDLE_TIMEOUT - timedelta(seconds=1))
    with pytest.raises(PortalSessionClosedError):
        portal.resume("session", at=T0 + 2 * IDLE_TIMEOUT)
    assert portal.status == "ended" and portal.end_reason == "idle"


def test_activity_keeps_the_session_until_its_absolute_end() -> None:
    portal = _redeemed()
    at = T0
    while at + timedelta(minutes=10) < T0 + ABSOLUTE_TIMEOUT:
        at += timedelta(minutes=10)
        portal.resume("session", at=at)
    with pytest.raises(PortalSessionClosedError):
        portal.resume("session", at=T0 + ABSOLUTE_TIMEOUT)
    assert portal.end_reason == "expired"


def test_activity_is_recorded_at_most_once_a_minute() -> None:
    portal = _redeemed()
    before = len(portal.pending_events)
    portal.resume("session", at=T0 + timedelta(seconds=30))
    assert len(portal.pending_events) == before
    portal.resume("session", at=T0 + timedelta(seconds=60))
    assert len(portal.pending_events) == before + 1


def test_a_wrong_session_token_is_refused() -> None:
    with pytest.raises(PortalSessionClosedError):
        _redeemed().resume("other", at=T0)


def test_a_verification_counts_for_five_minutes() -> None:
    portal = _redeemed()
    assert not portal.verification_fresh(at=T0)
    portal.record_verification(
        method="totp", enrolment_id=uuid4(), authentication_id=uuid4(), at=T0
    )
    assert portal.verification_fresh(at=T0 + VERIFICATION_TTL - timedelta(seconds=1))
    assert not portal.verification_fresh(at=T0 + VERIFICATION_TTL)


def test_an_ended_session_takes_no_verification_or_setup() -> None:
    portal = _redeemed()
    portal.end("signed_out", at=T0)
    portal.end("signed_out", at=T0)  # no second event
    assert [type(e).__name__ for e in portal.collect_events()][-1] == "Ended"
    with pytest.raises(PortalSessionClosedError):
        portal.record_verification(
            method="totp", enrolment_id=uuid4(), authentication_id=uuid4(), at=T0
        )
    with pytest.raises(PortalSessionClosedError):
        portal.record_setup(enrolment_id=uuid4(), method="totp", at=T0)
    with pytest.raises(PortalSessionClosedError):
        portal.resume("session", at=T0)


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["resume", "verify", "setup", "end"]), st.integers(0, 1200)),
        max_size=20,
    )
)
def test_replaying_the_events_rebuilds_the_same_session(steps: list[tuple[str, int]]) -> None:
    portal = _redeemed()
    at = T0
    for action, seconds in steps:
        at += timedelta(seconds=seconds)
        try:
            if action == "resume":
                portal.resume("session", at=at)
            elif action == "verify":
                portal.record_verification(
                    method="webauthn", enrolment_id=uuid4(), authentication_id=uuid4(), at=at
                )
            elif action == "setup":
                portal.record_setup(enrolment_id=uuid4(), method="totp", at=at)
            else:
                portal.end("signed_out", at=at)
        except PortalSessionClosedError:
            pass
    rebuilt = None
    for event in portal.collect_events():
        rebuilt = event.mutate(rebuilt)
    assert isinstance(rebuilt, PortalSession)
    for name in ("status", "version", "last_seen", "verified_at", "setups", "end_reason"):
        assert getattr(rebuilt, name) == getattr(portal, name), name
