"""Administrator: a user of an organisation holding its admin role, and their enrolment link."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

#: How long a one-time enrolment link printed by `tessera admin add` stays usable.
LINK_TTL = timedelta(hours=24)


class AdministratorError(Exception):
    """Base class of the errors an administrator raises."""


class EnrolmentLinkError(AdministratorError):
    """The one-time link is unknown, used up, replaced or expired (never says which)."""


class AdministratorRemovedError(AdministratorError):
    """The user no longer holds the admin role."""


class Administrator(Aggregate):
    """Holds the admin role of one user in one organisation.

    The role is granted with a one-time link: only its SHA-256 hash is kept, it works once and
    for LINK_TTL, and a new grant replaces an unused link. Enrolling sets the sign-in password
    (sealed by the vault, never in clear) and names the TOTP enrolment that is the second factor.
    Removing the role ends it (no link, no sign-in); appointing the user again starts afresh,
    with a new link and a new enrolment.
    """

    class Appointed(Aggregate.Created):
        org_id: UUID
        user_id: str
        by: str
        at: datetime

    class LinkIssued(Aggregate.Event):
        link_hash: str
        expires_at: datetime
        at: datetime

    class Enrolled(Aggregate.Event):
        enrolment_id: UUID
        password_ref: str
        at: datetime

    class SignedIn(Aggregate.Event):
        at: datetime

    class Removed(Aggregate.Event):
        by: str
        at: datetime

    class Reappointed(Aggregate.Event):
        by: str
        at: datetime

    @staticmethod
    def create_id(org_id: UUID, user_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"tessera:administrator:{org_id}/{user_id}")

    @event(Appointed)
    def __init__(self, org_id: UUID, user_id: str, by: str, at: datetime) -> None:
        self.org_id = org_id
        self.user_id = user_id
        self.appointed_at = at
        self.link_hash: str | None = None
        self.link_expires_at: datetime | None = None
        self.enrolment_id: UUID | None = None
        self.password_ref: str | None = None
        self.last_sign_in: datetime | None = None
        self.removed = False

    @classmethod
    def appoint(cls, *, org_id: UUID, user_id: str, by: str, at: datetime) -> Administrator:
        if not 1 <= len(user_id) <= 200 or not user_id.isprintable():
            raise AdministratorError("a user id has 1 to 200 printable characters")
        return cls(  # type: ignore[call-arg]  # eventsourcing accepts id= for annotated ids
            id=cls.create_id(org_id, user_id), org_id=org_id, user_id=user_id, by=by, at=at
        )

    id: UUID

    @property
    def is_enrolled(self) -> bool:
        return self.password_ref is not None and self.enrolment_id is not None

    def issue_link(self, link_hash: str, *, at: datetime) -> None:
        """A new one-time link; an earlier unused one stops working."""
        if self.removed:
            raise AdministratorRemovedError("the user is no longer an administrator")
        self._issue_link(link_hash=link_hash, expires_at=at + LINK_TTL, at=at)

    def remove(self, *, by: str, at: datetime) -> None:
        """Take the admin role away: an unused link stops working and sign-in is refused.
        Removing a removed administrator records nothing."""
        if not self.removed:
            self._remove(by=by, at=at)

    def reappoint(self, *, by: str, at: datetime) -> None:
        """Give a removed administrator the role again; they enrol afresh through a new link
        (the old password and authenticator no longer sign them in)."""
        if self.removed:
            self._reappoint(by=by, at=at)

    def check_link(self, link_hash: str, *, at: datetime) -> None:
        """Raise EnrolmentLinkError unless `link_hash` is the current, unused, unexpired link."""
        if (
            self.link_hash is None
            or self.link_expires_at is None
            or self.link_hash != link_hash
            or at >= self.link_expires_at
        ):
            raise EnrolmentLinkError("the enrolment link is not valid")

    def enrol(self, link_hash: str, *, enrolment_id: UUID, password_ref: str, at: datetime) -> None:
        """Use up the link: the password and the TOTP enrolment become the sign-in factors."""
        self.check_link(link_hash, at=at)
        self._enrol(enrolment_id=enrolment_id, password_ref=password_ref, at=at)

    def record_sign_in(self, *, at: datetime) -> None:
        if self.removed:
            raise AdministratorRemovedError("the user is no longer an administrator")
        self._record_sign_in(at=at)

    @event(LinkIssued)
    def _issue_link(self, link_hash: str, expires_at: datetime, at: datetime) -> None:
        self.link_hash = link_hash
        self.link_expires_at = expires_at

    @event(Enrolled)
    def _enrol(self, enrolment_id: UUID, password_ref: str, at: datetime) -> None:
        self.enrolment_id = enrolment_id
        self.password_ref = password_ref
        self.link_hash = None
        self.link_expires_at = None

    @event(SignedIn)
    def _record_sign_in(self, at: datetime) -> None:
        self.last_sign_in = at

    @event(Removed)
    def _remove(self, by: str, at: datetime) -> None:
        self.removed = True
        self.link_hash = None
        self.link_expires_at = None

    @event(Reappointed)
    def _reappoint(self, by: str, at: datetime) -> None:
        self.removed = False
        self.enrolment_id = None
        self.password_ref = None
