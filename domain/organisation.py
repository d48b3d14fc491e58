"""Organisation and ApiKey: tenants and the credentials their applications call with."""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

ROLES = frozenset({"application", "admin"})


class OrganisationError(Exception):
    """Base class of the errors an organisation or key raises."""


class Organisation(Aggregate):
    """A tenant; every user, enrolment and session belongs to exactly one."""

    id: UUID

    class Created(Aggregate.Created):
        name: str
        at: datetime

    @event(Created)
    def __init__(self, name: str, at: datetime) -> None:
        self.name = name
        self.created_at = at

    @classmethod
    def create(cls, *, org_id: UUID, name: str, at: datetime) -> Organisation:
        name = name.strip()
        if not 1 <= len(name) <= 200:
            raise OrganisationError("an organisation name has 1 to 200 characters")
        return cls(id=org_id, name=name, at=at)  # type: ignore[call-arg]


class ApiKey(Aggregate):
    """An API key, known only by its hash; the id derives from the hash for lookup."""

    id: UUID

    class Issued(Aggregate.Created):
        org_id: UUID
        role: str
        label: str
        at: datetime

    class Revoked(Aggregate.Event):
        at: datetime

    @staticmethod
    def create_id(key_hash: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"tessera:api-key:{key_hash}")

    @event(Issued)
    def __init__(self, org_id: UUID, role: str, label: str, at: datetime) -> None:
        self.org_id = org_id
        self.role = role
        self.label = label
        self.created_at = at
        self.revoked = False

    @classmethod
    def issue(cls, *, key_hash: str, org_id: UUID, role: str, label: str, at: datetime) -> ApiKey:
        if role not in ROLES:
            raise OrganisationError(f"role must be one of {sorted(ROLES)}")
        return cls(  # type: ignore[call-arg]  # eventsourcing accepts id= for annotated ids
            id=cls.create_id(key_hash), org_id=org_id, role=role, label=label, at=at
        )

    def revoke(self, *, at: datetime) -> None:
        if not self.revoked:
            self._revoke(at=at)

    @event(Revoked)
    def _revoke(self, at: datetime) -> None:
        self.revoked = True
