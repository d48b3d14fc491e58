"""The Administrator aggregate: one-time links, enrolment, and replay of its events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from domain.administrator import (
    LINK_TTL,
    Administrator,
    AdministratorError,
    AdministratorRemovedError,
    EnrolmentLinkError,
)

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def _appointed() -> Administrator:
    admin = Administrator.appoint(org_id=uuid4(), user_id="root", by="cli", at=T0)
    admin.issue_link("hash-1", at=T0)
    return admin


def test_a_link_is_valid_until_it_expires() -> None:
    admin = _appointed()
    admin.check_link("hash-1", at=T0 + LINK_TTL - timedelta(seconds=1))
    with pytest.raises(EnrolmentLinkError):
        admin.check_link("hash-1", at=T0 + LINK_TTL)
    with pytest.raises(EnrolmentLinkError):
        admin.check_link("another", at=T0)


def test_a_new_link_replaces_the_unused_one() -> None:
    admin = _appointed()
    admin.issue_link("hash-2", at=T0)
    with pytest.raises(EnrolmentLinkError):
        admin.check_link("hash-1", at=T0)
    admin.check_link("hash-2", at=T0)


def test_enrolling_uses_the_link_up() -> None:
    admin = _appointed()
    enrolment_id = uuid4()
    admin.enrol("hash-1", enrolment_id=enrolment_id, password_ref="sealed", at=T0)
    assert admin.is_enrolled and admin.enrolment_id == enrolment_id
    with pytest.raises(EnrolmentLinkError):
        admin.enrol("hash-1", enrolment_id=uuid4(), password_ref="other", at=T0)
    assert admin.password_ref == "sealed"


def test_user_ids_must_be_printable() -> None:
    with pytest.raises(AdministratorError):
        Administrator.appoint(org_id=uuid4(), user_id="bad\nid", by="cli", at=T0)


def test_replaying_the_events_rebuilds_the_same_administrator() -> None:
    admin = _appointed()
    admin.enrol("hash-1", enrolment_id=uuid4(), password_ref="sealed", at=T0)
    admin.record_sign_in(at=T0 + timedelta(minutes=1))
    rebuilt = None
    for event in admin.collect_events():
        rebuilt = event.mutate(rebuilt)
    assert isinstance(rebuilt, Administrator)
    assert rebuilt.version == admin.version
    assert (
        rebuilt.enrolment_id,
        rebuilt.password_ref,
        rebuilt.link_hash,
        rebuilt.last_sign_in,
    ) == (
        admin.enrolment_id,
        admin.password_ref,
        None,
        T0 + timedelta(minutes=1),
    )


def test_a_removed_administrator_has_no_link_and_cannot_sign_in() -> None:
    admin = _appointed()
    admin.remove(by="admin:alice", at=T0)
    assert admin.removed and admin.link_hash is None
    with pytest.raises(EnrolmentLinkError):
        admin.enrol("hash-1", enrolment_id=uuid4(), password_ref="sealed", at=T0)
    with pytest.raises(AdministratorRemovedError):
        admin.record_sign_in(at=T0)
    with pytest.raises(AdministratorRemovedError):
        admin.issue_link("hash-2", at=T0)


def test_removing_twice_or_reappointing_an_active_administrator_records_nothing() -> None:
    admin = _appointed()
    admin.reappoint(by="cli", at=T0)
    admin.remove(by="cli", at=T0)
    admin.remove(by="cli", at=T0)
    assert [type(e).__name__ for e in admin.collect_events()] == [
        "Appointed",
        "LinkIssued",
        "Removed",
    ]


def test_an_administrator_appointed_again_enrols_afresh_and_replays_the_same() -> None:
    admin = _appointed()
    admin.enrol("hash-1", enrolment_id=uuid4(), password_ref="sealed", at=T0)
    admin.remove(by="cli", at=T0 + timedelta(hours=1))
    admin.reappoint(by="cli", at=T0 + timedelta(hours=2))
    assert not admin.removed and not admin.is_enrolled
    admin.issue_link("hash-3", at=T0 + timedelta(hours=2))
    admin.check_link("hash-3", at=T0 + timedelta(hours=2))
    rebuilt = None
    for event in admin.collect_events():
        rebuilt = event.mutate(rebuilt)
    assert isinstance(rebuilt, Administrator)
    assert (rebuilt.version, rebuilt.removed, rebuilt.is_enrolled, rebuilt.link_hash) == (
        admin.version,
        False,
        False,
        "hash-3",
    )
