"""Account: one user of one organisation, its enrolments and its login throttle."""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.throttle import ThrottleRule


class AccountError(Exception):
    """Base class of the errors an account raises."""


class Account(Aggregate):
    """Indexes a user's enrolments and throttles failed logins across sessions.

    The throttle lives here, per user, and not only on enrolments, so that a user with no
    authenticator is throttled exactly like one with an authenticator: responses never
    reveal whether a user or an enrolment exists (RFC 4226 §7.3: delays span sessions).
    """

    class Opened(Aggregate.Created):
        org_id: UUID
        user_id: str

    class EnrolmentAdded(Aggregate.Event):
        enrolment_id: UUID

    class EnrolmentRemoved(Aggregate.Event):
        enrolment_id: UUID

    class FailureRecorded(Aggregate.Event):
        at: datetime

    class FailuresCleared(Aggregate.Event):
        by: str
        at: datetime

    @staticmethod
    def create_id(org_id: UUID, user_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"tessera:account:{org_id}/{user_id}")

    @event(Opened)
    def __init__(self, org_id: UUID, user_id: str) -> None:
        self.org_id = org_id
        self.user_id = user_id
        self.enrolment_ids: list[UUID] = []
        self.consecutive_failures = 0
        self.last_failure_at: datetime | None = None

    def retry_after(self, rule: ThrottleRule, *, at: datetime) -> int:
        """Seconds before the next attempt may be judged; 0 when it may be now."""
        return rule.retry_after(self.consecutive_failures, self.last_failure_at, at=at)

    def is_locked(self, rule: ThrottleRule) -> bool:
        return rule.locks(self.consecutive_failures)

    def add_enrolment(self, enrolment_id: UUID) -> None:
        if enrolment_id not in self.enrolment_ids:
            self._add_enrolment(enrolment_id=enrolment_id)

    def remove_enrolment(self, enrolment_id: UUID) -> None:
        if enrolment_id in self.enrolment_ids:
            self._remove_enrolment(enrolment_id=enrolment_id)

    def record_failure(self, *, at: datetime) -> None:
        self._record_failure(at=at)

    def clear_failures(self, *, by: str, at: datetime) -> None:
        if self.consecutive_failures:
            self._clear_failures(by=by, at=at)

    @event(EnrolmentAdded)
    def _add_enrolment(self, enrolment_id: UUID) -> None:
        self.enrolment_ids.append(enrolment_id)

    @event(EnrolmentRemoved)
    def _remove_enrolment(self, enrolment_id: UUID) -> None:
        self.enrolment_ids.remove(enrolment_id)

    @event(FailureRecorded)
    def _record_failure(self, at: datetime) -> None:
        self.consecutive_failures += 1
        self.last_failure_at = at

    @event(FailuresCleared)
    def _clear_failures(self, by: str, at: datetime) -> None:
        self.consecutive_failures = 0
        self.last_failure_at = None
