"""WebhookSubscription: an organisation asks for signed HTTP callbacks about chosen events."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

#: Event types a subscription may name. "recovery.opened" is reserved: accepted, not yet emitted.
EVENT_TYPES = ("enrolment.added", "enrolment.removed", "lockout", "risky_login", "recovery.opened")
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 200


class WebhookError(Exception):
    """Base class of the errors a webhook subscription raises."""


class InvalidWebhookError(WebhookError):
    """The URL, event types or description break the rules."""


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host, no credentials and no fragment."""
    if not url or len(url) > MAX_URL_LENGTH or url != url.strip() or not url.isascii():
        raise InvalidWebhookError("the URL must be ASCII, without spaces, at most 2048 characters")
    if any(ord(c) < 0x21 or c in '\\<>"{}|^`' for c in url):
        raise InvalidWebhookError("the URL contains characters a URL may not contain")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidWebhookError("the URL cannot be parsed") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidWebhookError("the URL must start with http:// or https://")
    if not parts.hostname:
        raise InvalidWebhookError("the URL must name a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookError("the URL may not carry credentials (they would be stored)")
    if parts.fragment or url.endswith("#"):
        raise InvalidWebhookError("the URL may not have a fragment")
    if port == 0:
        raise InvalidWebhookError("the URL's port must be 1 to 65535")
    return url


class WebhookSubscription(Aggregate):
    """Where and about what an organisation is told. The signing secret is only referenced
    (`secret_ref`, sealed by the vault for `secret_owner(org_id)`), never kept in events.

    Rules: the URL is http(s) with a host; at least one known event type; deleting twice
    records nothing.
    """

    id: UUID

    class Created(Aggregate.Created):
        org_id: UUID
        url: str
        events: list[str]
        description: str | None
        secret_ref: str
        by: str
        at: datetime

    class Deleted(Aggregate.Event):
        by: str
        at: datetime

    @staticmethod
    def secret_owner(org_id: UUID) -> UUID:
        """The vault owner of an organisation's webhook secrets (one data key per org)."""
        return uuid5(NAMESPACE_URL, f"tessera:webhooks:{org_id}")

    @event(Created)
    def __init__(
        self,
        org_id: UUID,
        url: str,
        events: list[str],
        description: str | None,
        secret_ref: str,
        by: str,
        at: datetime,
    ) -> None:
        self.org_id = org_id
        self.url = url
        self.events = events
        self.description = description
        self.secret_ref = secret_ref
        self.created_at = at
        self.deleted = False

    @classmethod
    def create(
        cls,
        *,
        webhook_id: UUID,
        org_id: UUID,
        url: str,
        events: list[str],
        description: str | None,
        secret_ref: str,
        by: str,
        at: datetime,
    ) -> WebhookSubscription:
        check_url(url)
        chosen = sorted(set(events))
        if not chosen:
            raise InvalidWebhookError("name at least one event type")
        unknown = [e for e in chosen if e not in EVENT_TYPES]
        if unknown:
            raise InvalidWebhookError(f"unknown event types {unknown}; known: {list(EVENT_TYPES)}")
        if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
            raise InvalidWebhookError("the description has at most 200 characters")
        return cls(  # type: ignore[call-arg]  # eventsourcing accepts id=
            id=webhook_id,
            org_id=org_id,
            url=url,
            events=chosen,
            description=description,
            secret_ref=secret_ref,
            by=by,
            at=at,
        )

    def delete(self, *, by: str, at: datetime) -> None:
        if not self.deleted:
            self._delete(by=by, at=at)

    @event(Deleted)
    def _delete(self, by: str, at: datetime) -> None:
        self.deleted = True
