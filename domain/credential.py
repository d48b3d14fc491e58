"""CredentialBinding: which enrolment a WebAuthn credential id belongs to, per organisation."""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event


class CredentialBinding(Aggregate):
    """Finds a credential's enrolment from its id alone (usernameless logins) and makes a
    credential id unique within an organisation: its id derives from both, so a second
    registration of the same credential collides on the aggregate's first version.
    """

    class Bound(Aggregate.Created):
        org_id: UUID
        credential_id: str  # base64url
        enrolment_id: UUID
        user_id: str
        at: datetime

    class Rebound(Aggregate.Event):
        enrolment_id: UUID
        user_id: str
        at: datetime

    @staticmethod
    def create_id(org_id: UUID, credential_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"tessera:credential:{org_id}/{credential_id}")

    @event(Bound)
    def __init__(
        self, *, org_id: UUID, credential_id: str, enrolment_id: UUID, user_id: str, at: datetime
    ) -> None:
        self.org_id = org_id
        self.credential_id = credential_id
        self.enrolment_id = enrolment_id
        self.user_id = user_id

    def rebind(self, *, enrolment_id: UUID, user_id: str, at: datetime) -> None:
        """The credential's earlier enrolment was removed and it is registered again."""
        self._rebind(enrolment_id=enrolment_id, user_id=user_id, at=at)

    @event(Rebound)
    def _rebind(self, enrolment_id: UUID, user_id: str, at: datetime) -> None:
        self.enrolment_id = enrolment_id
        self.user_id = user_id
