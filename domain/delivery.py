"""Delivery: one out-of-band code's journey to the user, provider by provider (no code in it)."""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

#: Why a send was refused before any provider was tried (toll-fraud caps and policy).
REFUSAL_REASONS = frozenset(
    {
        "number_cap",  # too many codes to this number this hour
        "ip_cap",  # too many codes requested from this IP address this hour
        "organisation_cap",  # the organisation's hourly total
        "country_cap",  # too many codes to this destination country this hour
        "unusual_countries",  # a burst to countries outside the usual ones tripped the breaker
    }
)


class Delivery(Aggregate):
    """Every provider attempt and status callback of one message, so failover, toll-fraud
    refusals and delivery rates reach the audit trail and analytics."""

    id: UUID

    class Requested(Aggregate.Created):
        org_id: UUID
        user_id: str
        channel: str
        purpose: str  # "login" | "enrolment"
        subject_id: UUID  # the authentication session or enrolment
        region: str | None
        masked_to: str
        locale: str
        at: datetime

    class Attempted(Aggregate.Event):
        provider: str
        accepted: bool
        provider_message_id: str | None
        error: str | None
        elapsed_ms: int
        at: datetime

    class Refused(Aggregate.Event):
        reason: str
        detail: str
        at: datetime

    class StatusReported(Aggregate.Event):
        provider: str
        status: str
        error_code: str | None
        at: datetime

    @event(Requested)
    def __init__(
        self,
        *,
        org_id: UUID,
        user_id: str,
        channel: str,
        purpose: str,
        subject_id: UUID,
        region: str | None,
        masked_to: str,
        locale: str,
        at: datetime,
    ) -> None:
        self.org_id = org_id
        self.user_id = user_id
        self.channel = channel
        self.purpose = purpose
        self.subject_id = subject_id
        self.region = region
        self.masked_to = masked_to
        self.locale = locale
        self.status = "requested"
        self.provider: str | None = None
        self.attempts = 0

    def record_attempt(
        self,
        *,
        provider: str,
        accepted: bool,
        provider_message_id: str | None,
        error: str | None,
        elapsed_ms: int,
        at: datetime,
    ) -> None:
        self._attempt(
            provider=provider,
            accepted=accepted,
            provider_message_id=provider_message_id,
            error=error,
            elapsed_ms=elapsed_ms,
            at=at,
        )

    def refuse(self, reason: str, detail: str, *, at: datetime) -> None:
        if reason not in REFUSAL_REASONS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        self._refuse(reason=reason, detail=detail, at=at)

    def report_status(
        self, *, provider: str, status: str, error_code: str | None, at: datetime
    ) -> None:
        self._report(provider=provider, status=status, error_code=error_code, at=at)

    @event(Attempted)
    def _attempt(
        self,
        provider: str,
        accepted: bool,
        provider_message_id: str | None,
        error: str | None,
        elapsed_ms: int,
        at: datetime,
    ) -> None:
        self.attempts += 1
        if accepted:
            self.status = "sent"
            self.provider = provider
        elif self.status == "requested":
            self.status = "failing"

    @event(Refused)
    def _refuse(self, reason: str, detail: str, at: datetime) -> None:
        self.status = "refused"

    @event(StatusReported)
    def _report(self, provider: str, status: str, error_code: str | None, at: datetime) -> None:
        self.status = status


class ProviderMessage(Aggregate):
    """Finds a delivery from a provider's own message id (status callbacks carry only it)."""

    id: UUID

    class Recorded(Aggregate.Created):
        org_id: UUID
        delivery_id: UUID

    @staticmethod
    def create_id(provider: str, provider_message_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"tessera:provider-message:{provider}/{provider_message_id}")

    @event(Recorded)
    def __init__(self, *, org_id: UUID, delivery_id: UUID) -> None:
        self.org_id = org_id
        self.delivery_id = delivery_id
