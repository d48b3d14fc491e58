"""Analytics read models: daily counts per method, MFA coverage, risk, step-ups; a change log."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking, TrackingRecorder

from application.errors import InvalidRequestError
from application.organisations import Principal
from domain.account import Account
from domain.assurance import PHISHING_RESISTANT_METHODS
from domain.authentication import AuthenticationSession
from domain.delivery import Delivery
from domain.enrolment import Enrolment

#: Daily counters (`metric` -> what its `label` is).
ENROLMENT_STARTED = "enrolment_started"  # label: method
ENROLMENT_ADDED = "enrolment_added"  # label: method; an enrolment became active (confirmed)
ENROLMENT_REMOVED = "enrolment_removed"  # label: method; an active enrolment was revoked
AUTH_ATTEMPT = "auth_attempt"  # label: method; a code judged (verified or failed)
AUTH_FAILED = "auth_failed"  # label: method
AUTH_SUCCESS = "auth_success"  # label: method of the factor that satisfied the login
RISK = "risk"  # label: risk level of a started login
STEP_UP = "step_up"  # label: the operation a login was started for
DENIED = "auth_denied"  # label: reason

#: SMS handed over (or reported delivered) and failed, per provider attempt; a provider's
#: callback that reports a failure later moves a message from delivered to failed.
SMS_DELIVERED, SMS_FAILED = "sms_delivered", "sms_failed"  # label: "<provider>/<country>"
#: Not fed yet: recovery cases have no events until their issue lands.
RECOVERY_OPENED, RECOVERY_COMPLETED = "recovery_opened", "recovery_completed"


@dataclass(frozen=True, slots=True)
class Tracked:
    """What analytics remembers of an enrolment or a login, for the events that follow it.

    `state` is an enrolment's status (pending/active/revoked); for a login, `method` is the
    method of its last verified factor, to which its success is counted.
    """

    aggregate_id: UUID
    org_id: UUID
    kind: str  # "enrolment" | "authentication"
    user_id: str
    method: str | None
    state: str


@dataclass(frozen=True, slots=True)
class CountDelta:
    org_id: UUID
    day: date
    metric: str
    label: str
    delta: int = 1


@dataclass(frozen=True, slots=True)
class UserDelta:
    """A change to one user's authenticators; zero deltas record that the user was seen."""

    org_id: UUID
    user_id: str
    active: int = 0
    phishing_resistant: int = 0


Delta = CountDelta | UserDelta


@dataclass(frozen=True, slots=True)
class Change:
    """One row change of the read model, as the feed publishes it (the row's new value)."""

    seq: int
    position: int
    org_id: UUID
    model: str  # "daily" | "user"
    key: dict[str, Any]
    value: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "position": self.position,
            "org_id": str(self.org_id),
            "model": self.model,
            "key": self.key,
            "value": self.value,
        }


@dataclass(frozen=True, slots=True)
class DailyCount:
    day: date
    metric: str
    label: str
    value: int


@dataclass(frozen=True, slots=True)
class Coverage:
    users: int
    with_authenticator: int
    with_phishing_resistant: int


@dataclass(slots=True)
class Batch:
    """A batch's effect: subjects to upsert and deltas (with their event positions) in order."""

    subjects: dict[UUID, Tracked] = field(default_factory=dict)
    deltas: list[tuple[int, Delta]] = field(default_factory=list)


class AnalyticsView(TrackingRecorder):
    """Analytics tables; a batch's rows, change log and tracking position commit together."""

    @abstractmethod
    def subjects(self, ids: Collection[UUID]) -> dict[UUID, Tracked]:
        """The known enrolments and logins among `ids`."""

    @abstractmethod
    def apply(self, batch: Batch, tracking: Tracking, *, first: int) -> None:
        """In one transaction: record the tracking position (IntegrityError, and nothing
        written, when any event from notification id `first` to `tracking` was applied
        before), upsert the subjects, apply each delta in order and append one change per
        delta with the row's new value."""

    @abstractmethod
    def daily(
        self, org_id: UUID, metrics: Collection[str], *, since: date | None, until: date | None
    ) -> list[DailyCount]:
        """One organisation's counts of `metrics` from `since` to `until` (both inclusive),
        by day, metric and label."""

    @abstractmethod
    def coverage(self, org_id: UUID) -> Coverage:
        """Users seen, and those with at least one active (phishing-resistant) authenticator."""

    @abstractmethod
    def changes_after(self, seq: int, *, org_id: UUID, limit: int) -> list[Change]:
        """One organisation's changes after `seq`, in order."""

    @abstractmethod
    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, sorted: for comparing a rebuild with the live model."""

    @abstractmethod
    def reset(self) -> None:
        """Delete every row and the tracking position."""

    @abstractmethod
    def close(self) -> None:
        """Release the view's connections."""


def _day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def deltas_of(domain_event: Any, known: dict[UUID, Tracked]) -> tuple[list[Delta], Tracked | None]:
    """The deltas of one event and the subject it creates or changes (None if neither).

    `known` holds the subjects seen so far; the caller stores the returned subject into it.
    """
    aggregate_id: UUID = domain_event.originator_id
    if isinstance(domain_event, Account.Opened):
        return [UserDelta(domain_event.org_id, domain_event.user_id)], None
    if isinstance(domain_event, Enrolment.Started):
        subject = Tracked(
            aggregate_id,
            domain_event.org_id,
            "enrolment",
            domain_event.user_id,
            domain_event.method,
            "pending",
        )
        day = _day(domain_event.at)
        return [
            UserDelta(subject.org_id, subject.user_id),
            CountDelta(subject.org_id, day, ENROLMENT_STARTED, domain_event.method),
        ], subject
    if isinstance(domain_event, AuthenticationSession.Started):
        subject = Tracked(
            aggregate_id, domain_event.org_id, "authentication", domain_event.user_id, None, ""
        )
        day = _day(domain_event.at)
        deltas: list[Delta] = [
            CountDelta(subject.org_id, day, RISK, str(domain_event.risk.get("level", "unknown")))
        ]
        if subject.user_id:  # a usernameless login names its user when a passkey verifies
            deltas.append(UserDelta(subject.org_id, subject.user_id))
        if domain_event.operation is not None:
            deltas.append(CountDelta(subject.org_id, day, STEP_UP, domain_event.operation))
        return deltas, subject
    if isinstance(domain_event, Delivery.Requested):
        # the state holds the destination country; only SMS counts towards SMS delivery
        subject = Tracked(
            aggregate_id,
            domain_event.org_id,
            "delivery",
            domain_event.user_id,
            domain_event.channel,
            domain_event.region or "unknown",
        )
        return [], subject
    known_subject = known.get(aggregate_id)
    if known_subject is None:
        return [], None
    if known_subject.kind == "delivery":
        return _delivery(domain_event, known_subject), None
    return _following(domain_event, known_subject)


FAILED_STATUSES = frozenset({"failed", "undelivered"})


def _delivery(domain_event: Any, s: Tracked) -> list[Delta]:
    if s.method != "sms":
        return []
    day = _day(domain_event.at)
    if isinstance(domain_event, Delivery.Attempted):
        label = f"{domain_event.provider}/{s.state}"
        return [
            CountDelta(s.org_id, day, SMS_DELIVERED if domain_event.accepted else SMS_FAILED, label)
        ]
    if isinstance(domain_event, Delivery.StatusReported) and domain_event.status in FAILED_STATUSES:
        label = f"{domain_event.provider}/{s.state}"
        return [
            CountDelta(s.org_id, day, SMS_DELIVERED, label, -1),
            CountDelta(s.org_id, day, SMS_FAILED, label),
        ]
    return []


def _with(
    s: Tracked,
    *,
    state: str | None = None,
    method: str | None = None,
    user_id: str | None = None,
) -> Tracked:
    """`s` with a new state, method or user (dataclasses.replace, at a fraction of its cost)."""
    return Tracked(
        s.aggregate_id,
        s.org_id,
        s.kind,
        user_id or s.user_id,
        method or s.method,
        state or s.state,
    )


def _following(domain_event: Any, s: Tracked) -> tuple[list[Delta], Tracked | None]:
    at = getattr(domain_event, "at", None)
    day = _day(at if isinstance(at, datetime) else domain_event.timestamp)
    method = s.method or "unknown"
    resistant = int(method in PHISHING_RESISTANT_METHODS)
    if (
        isinstance(domain_event, Enrolment.Confirmed | Enrolment.CredentialRegistered)
        and s.state == "pending"
    ):
        return [
            CountDelta(s.org_id, day, ENROLMENT_ADDED, method),
            UserDelta(s.org_id, s.user_id, 1, resistant),
        ], _with(s, state="active")
    if isinstance(domain_event, Enrolment.Revoked | Enrolment.Suspended) and s.state not in (
        "revoked",
        "suspended",
    ):
        state = "revoked" if isinstance(domain_event, Enrolment.Revoked) else "suspended"
        if s.state != "active":
            return [], _with(s, state=state)
        return [
            CountDelta(s.org_id, day, ENROLMENT_REMOVED, method),
            UserDelta(s.org_id, s.user_id, -1, -resistant),
        ], _with(s, state=state)
    if isinstance(domain_event, Enrolment.Revoked):
        return [], _with(s, state="revoked")  # a suspended credential removed later
    if isinstance(domain_event, AuthenticationSession.FactorVerified):
        return [CountDelta(s.org_id, day, AUTH_ATTEMPT, domain_event.method)], _with(
            s, method=domain_event.method
        )
    if isinstance(domain_event, AuthenticationSession.KeyVerified):
        deltas: list[Delta] = [CountDelta(s.org_id, day, AUTH_ATTEMPT, "webauthn")]
        if not s.user_id:
            deltas.append(UserDelta(s.org_id, domain_event.user_id))
        return deltas, _with(s, method="webauthn", user_id=domain_event.user_id)
    if isinstance(domain_event, AuthenticationSession.AttemptFailed):
        return [
            CountDelta(s.org_id, day, AUTH_ATTEMPT, domain_event.method),
            CountDelta(s.org_id, day, AUTH_FAILED, domain_event.method),
        ], None
    if isinstance(domain_event, AuthenticationSession.Satisfied):
        return [CountDelta(s.org_id, day, AUTH_SUCCESS, method)], None
    if isinstance(domain_event, AuthenticationSession.Denied):
        return [CountDelta(s.org_id, day, DENIED, domain_event.reason)], None
    return [], None


def _creating(domain_event: Any) -> bool:
    return isinstance(
        domain_event, Enrolment.Started | AuthenticationSession.Started | Delivery.Requested
    )


class AnalyticsProjection:
    """Turns batches of events into count and user deltas; the view applies a batch at once.

    Deltas are computed per event, so the change log is the same whatever the batch size.
    Events that change nothing (policies, keys, throttling) still advance the position.
    """

    name = "analytics"

    def __init__(self, view: AnalyticsView) -> None:
        self.view = view

    def process_batch(self, events: Sequence[tuple[Any, Tracking]]) -> None:
        if not events:
            return
        ids = {e.originator_id for e, _ in events if not _creating(e)}
        known = self.view.subjects(ids)
        batch = Batch()
        for domain_event, tracking in events:
            deltas, subject = deltas_of(domain_event, known)
            if subject is not None:
                known[subject.aggregate_id] = subject
                batch.subjects[subject.aggregate_id] = subject
            batch.deltas.extend((tracking.notification_id, d) for d in deltas)
        self.view.apply(batch, events[-1][1], first=events[0][1].notification_id)

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.process_batch([(domain_event, tracking)])


# --- reading -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MethodDay:
    day: date
    method: str
    attempts: int
    successes: int
    failures: int

    @property
    def success_rate(self) -> float | None:
        return round(self.successes / self.attempts, 4) if self.attempts else None


@dataclass(frozen=True, slots=True)
class FeedPage:
    changes: list[Change]
    next_cursor: str


class ReadAnalytics:
    """An administrator reads their organisation's analytics.

    With projections inline, a read first applies pending events (read-your-writes).
    """

    def __init__(
        self, *, view: AnalyticsView, catch_up: Callable[[], object] | None = None
    ) -> None:
        self.view = view
        self._catch_up = catch_up

    def _read(self, principal: Principal) -> UUID:
        principal.require_admin()
        if self._catch_up is not None:
            self._catch_up()
        return principal.org_id

    def daily(
        self,
        *,
        principal: Principal,
        metrics: Collection[str],
        since: date | None = None,
        until: date | None = None,
    ) -> list[DailyCount]:
        if since is not None and until is not None and since > until:
            raise InvalidRequestError("'from' is after 'to'")
        org_id = self._read(principal)
        return self.view.daily(org_id, metrics, since=since, until=until)

    def authentications(
        self, *, principal: Principal, since: date | None = None, until: date | None = None
    ) -> list[MethodDay]:
        rows = self.daily(
            principal=principal,
            metrics=(AUTH_ATTEMPT, AUTH_SUCCESS, AUTH_FAILED),
            since=since,
            until=until,
        )
        table: dict[tuple[date, str], dict[str, int]] = {}
        for row in rows:
            table.setdefault((row.day, row.label), {})[row.metric] = row.value
        return [
            MethodDay(
                day,
                method,
                attempts=counts.get(AUTH_ATTEMPT, 0),
                successes=counts.get(AUTH_SUCCESS, 0),
                failures=counts.get(AUTH_FAILED, 0),
            )
            for (day, method), counts in sorted(table.items())
        ]

    def coverage(self, *, principal: Principal) -> Coverage:
        return self.view.coverage(self._read(principal))

    def feed(self, *, principal: Principal, cursor: str | None, limit: int = 1000) -> FeedPage:
        org_id = self._read(principal)
        after = parse_cursor(cursor)
        changes = self.view.changes_after(after, org_id=org_id, limit=limit)
        return FeedPage(changes, str(changes[-1].seq) if changes else str(after))


def parse_cursor(cursor: str | None) -> int:
    if cursor is None or cursor == "":
        return 0
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 15:
        raise InvalidRequestError("the cursor is not one this server handed out")
    return int(cursor)
