"""Signed webhooks: subscriptions, a transactional outbox fed by the events, and a dispatcher.

The outbox is a projection (`WebhookOutboxProjection`, fed by `ProjectionFollower` like the
audit trail): for each matching event and each subscription of its organisation that is active
at that point of the log, it inserts one delivery row in the same transaction as its tracking
position, so every event is enqueued exactly once. `WebhookDispatcher` claims due rows, signs
and POSTs them, and records each attempt; failures are retried with exponential back-off.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import threading
from abc import abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.persistence import Tracking, TrackingRecorder

from application.errors import InvalidRequestError, NotFoundError
from application.identity import IdentityApplication
from application.organisations import Principal
from application.ports import (
    Clock,
    IdGenerator,
    SecretGenerator,
    SecretUnavailableError,
    SecretVault,
    WebhookSender,
)
from application.projections import BackgroundLoop
from domain.authentication import AuthenticationSession
from domain.enrolment import Enrolment
from domain.webhook import WebhookError, WebhookSubscription, check_url

log = logging.getLogger("tessera.webhooks")

#: Attempt n (1-based) that fails waits min(2^(n-1) s, 1 h) before attempt n+1.
FIRST_DELAY_SECONDS = 1
MAX_DELAY_SECONDS = 3600
#: 36 attempts: the last comes about 24 h after the first (4,095 s + 23 h of hourly tries).
MAX_ATTEMPTS = 36
#: A claimed delivery is someone's for this long; after a crash another dispatcher retries it.
LEASE_SECONDS = 120
#: Receivers should refuse signatures whose timestamp is further than this from their clock.
SIGNATURE_TOLERANCE_SECONDS = 300
SIGNATURE_HEADER = "Tessera-Signature"
RISKY_LEVELS = ("medium", "high")


# --- signing and back-off ----------------------------------------------------------------


def sign(secret: str, body: bytes, *, timestamp: int) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>` (the key is the secret's UTF-8)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    now: datetime,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: parse the header, refuse a stale or future timestamp, compare
    every `v1` in constant time (several appear while a secret is being rolled)."""
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or abs(now.timestamp() - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp=timestamp).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, c) for c in candidates)


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: 1 s, 2 s, 4 s ... at most 1 h."""
    exponent = max(0, min(attempts - 1, 30))
    return timedelta(seconds=min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2**exponent))


def host_allowed(url: str, allowed_hosts: Collection[str] | None) -> bool:
    """Whether the URL's host is on the allow-list (`None` allows every host); an entry
    `*.example.com` also allows every subdomain."""
    if allowed_hosts is None:
        return True
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    for entry in allowed_hosts:
        entry = entry.lower().rstrip(".")
        if host == entry or (entry.startswith("*.") and host.endswith(entry[1:])):
            return True
    return False


# --- read model --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscription:
    webhook_id: UUID
    org_id: UUID
    url: str
    events: tuple[str, ...]
    description: str | None
    secret_ref: str  # sealed by the vault; never the secret
    created_at: datetime
    deleted_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.deleted_at is None


@dataclass(frozen=True, slots=True)
class WebhookSubject:
    """What later events need of an enrolment or a low-risk login: its org and user."""

    aggregate_id: UUID
    org_id: UUID
    user_id: str
    detail: str  # enrolment: its method; login: "low"


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_id: UUID
    webhook_id: UUID
    org_id: UUID
    position: int
    event_type: str
    payload: str  # the exact JSON body that is signed and sent
    created_at: datetime
    attempts: int = 0
    next_attempt_at: datetime | None = None
    status: str = "pending"  # "pending" | "delivered" | "failed"
    last_status: int | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    delivery_id: UUID
    number: int
    at: datetime
    status: int | None
    error: str | None


@dataclass(slots=True)
class OutboxBatch:
    """Everything one batch of events changes, written with its tracking position."""

    created: list[Subscription] = field(default_factory=list)
    deleted: list[tuple[UUID, datetime]] = field(default_factory=list)
    subjects: list[WebhookSubject] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)


class WebhookOutboxView(TrackingRecorder):
    """Subscriptions, the outbox and the attempts; `apply` is exactly once per position."""

    @abstractmethod
    def active_subscriptions(self, org_ids: Collection[UUID]) -> list[Subscription]:
        """The organisations' subscriptions that are not deleted."""

    @abstractmethod
    def subscriptions(self, org_id: UUID) -> list[Subscription]:
        """One organisation's active subscriptions, oldest first."""

    @abstractmethod
    def subscription(self, webhook_id: UUID) -> Subscription | None:
        """A subscription, deleted or not."""

    @abstractmethod
    def subjects(self, ids: Collection[UUID]) -> dict[UUID, WebhookSubject]:
        """The known subjects among `ids`."""

    @abstractmethod
    def apply(self, batch: OutboxBatch, tracking: Tracking) -> None:
        """Record the tracking position, then the batch's changes, in one transaction.
        Raises IntegrityError (and writes nothing) when the position was already recorded."""

    @abstractmethod
    def claim_due(self, *, now: datetime, lease_until: datetime, limit: int) -> list[Delivery]:
        """Pending deliveries due at `now` and not leased, leased to the caller until
        `lease_until`; concurrent callers never get the same row (SKIP LOCKED on PostgreSQL,
        one writer at a time on SQLite)."""

    @abstractmethod
    def record_attempt(
        self,
        delivery: Delivery,
        *,
        at: datetime,
        status: str,
        http_status: int | None,
        error: str | None,
        next_attempt_at: datetime | None,
    ) -> None:
        """Count one attempt, store its outcome and release the lease."""

    @abstractmethod
    def deliveries(self, webhook_id: UUID, *, limit: int) -> list[Delivery]:
        """A subscription's deliveries, newest first."""

    @abstractmethod
    def delivery(self, delivery_id: UUID) -> Delivery | None: ...

    @abstractmethod
    def attempts(self, delivery_id: UUID) -> list[Attempt]:
        """Every attempt of a delivery, in order."""

    @abstractmethod
    def close(self) -> None:
        """Release the view's connections."""


# --- the projection ----------------------------------------------------------------------


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def delivery_id(webhook_id: UUID, domain_event: Any) -> UUID:
    """Deterministic, so a replayed event can never make a second row for one receiver."""
    event_id = f"{domain_event.originator_id}/{domain_event.originator_version}"
    return uuid5(NAMESPACE_URL, f"tessera:webhook-delivery:{webhook_id}/{event_id}")


class WebhookOutboxProjection:
    """Turns events into outbox rows, one per matching active subscription of the org.

    Subscription events are applied in log order with the others, so "active at that time"
    is exact. Payloads carry ids, user id, method and risk, never a secret or code.
    """

    name = "webhooks"

    def __init__(self, view: WebhookOutboxView) -> None:
        self.view = view

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.process_batch([(domain_event, tracking)])

    def process_batch(self, events: Sequence[tuple[Any, Tracking]]) -> None:
        if not events:
            return
        batch = OutboxBatch()
        subjects = self.view.subjects({e.originator_id for e, _ in events})
        orgs = {s.org_id for s in subjects.values()}
        orgs |= {e.org_id for e, _ in events if isinstance(getattr(e, "org_id", None), UUID)}
        active: dict[UUID, Subscription] = {
            s.webhook_id: s for s in self.view.active_subscriptions(orgs)
        }
        for domain_event, tracking in events:
            self._one(domain_event, tracking.notification_id, subjects, active, batch)
        self.view.apply(batch, events[-1][1])

    def _one(
        self,
        e: Any,
        position: int,
        subjects: dict[UUID, WebhookSubject],
        active: dict[UUID, Subscription],
        batch: OutboxBatch,
    ) -> None:
        if isinstance(e, WebhookSubscription.Created):
            created = Subscription(
                e.originator_id, e.org_id, e.url, tuple(e.events), e.description,
                e.secret_ref, e.at,
            )  # fmt: skip
            active[created.webhook_id] = created
            batch.created.append(created)
            return
        if isinstance(e, WebhookSubscription.Deleted):
            active.pop(e.originator_id, None)
            batch.deleted.append((e.originator_id, e.at))
            return
        if isinstance(e, Enrolment.Started):
            subject = WebhookSubject(e.originator_id, e.org_id, e.user_id, e.method)
            subjects[subject.aggregate_id] = subject
            batch.subjects.append(subject)
            return
        found = self._event_type(e, subjects, active, batch)
        if found is None:
            return
        event_type, org_id, data = found
        for subscription in active.values():
            if subscription.org_id != org_id or event_type not in subscription.events:
                continue
            identifier = delivery_id(subscription.webhook_id, e)
            occurred_at: datetime = getattr(e, "at", e.timestamp)  # domain time, from the Clock
            body = {
                "id": str(identifier),
                "type": event_type,
                "occurred_at": _iso(occurred_at),
                "org_id": str(org_id),
                "data": data,
            }
            batch.deliveries.append(
                Delivery(
                    delivery_id=identifier,
                    webhook_id=subscription.webhook_id,
                    org_id=org_id,
                    position=position,
                    event_type=event_type,
                    payload=json.dumps(body, sort_keys=True, separators=(",", ":")),
                    created_at=occurred_at,
                    next_attempt_at=occurred_at,
                )
            )

    @staticmethod
    def _event_type(
        e: Any,
        subjects: dict[UUID, WebhookSubject],
        active: dict[UUID, Subscription],
        batch: OutboxBatch,
    ) -> tuple[str, UUID, dict[str, Any]] | None:
        kinds = {
            Enrolment.Confirmed: "enrolment.added",
            Enrolment.CredentialRegistered: "enrolment.added",  # WebAuthn
            Enrolment.Revoked: "enrolment.removed",
            Enrolment.Locked: "lockout",
        }
        kind = kinds.get(type(e))
        if kind is not None:
            subject = subjects.get(e.originator_id)
            if subject is None:
                return None
            data: dict[str, Any] = {
                "enrolment_id": str(e.originator_id),
                "user_id": subject.user_id,
                "method": subject.detail,
            }
            if isinstance(e, Enrolment.Locked):
                data["failures"] = e.failures
            return kind, subject.org_id, data
        if isinstance(e, AuthenticationSession.Started):
            level = str(e.risk.get("level", "low"))
            if level not in RISKY_LEVELS:
                # a low-risk login is only remembered if the policy may deny it right away
                if any(s.org_id == e.org_id and "risky_login" in s.events for s in active.values()):
                    subject = WebhookSubject(e.originator_id, e.org_id, e.user_id, "low")
                    subjects[subject.aggregate_id] = subject
                    batch.subjects.append(subject)
                return None
            return "risky_login", e.org_id, _risky(e.originator_id, e.user_id, e, denied=False)
        if isinstance(e, AuthenticationSession.Denied) and e.reason == "risk":
            subject = subjects.get(e.originator_id)
            if subject is None or subject.detail != "low":
                return None  # a medium or high risk login was already reported when it started
            data = {
                "authentication_id": str(e.originator_id),
                "user_id": subject.user_id,
                "risk": {"level": "low"},
                "denied": True,
            }
            return "risky_login", subject.org_id, data
        return None


def _risky(session_id: UUID, user_id: str, e: Any, *, denied: bool) -> dict[str, Any]:
    risk = e.risk
    context = e.context
    return {
        "authentication_id": str(session_id),
        "user_id": user_id,
        "operation": e.operation,
        "risk": {
            "level": risk.get("level"),
            "score": risk.get("score"),
            "reasons": list(risk.get("reasons", [])),
        },
        "ip": context.get("ip"),
        "user_agent": context.get("user_agent"),
        "denied": e.required_aal is None or denied,
    }


# --- the dispatcher ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DispatchResult:
    delivered: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.delivered + self.retried + self.failed


class WebhookDispatcher:
    """Claims due deliveries, signs and POSTs each, and records the outcome.

    2xx is delivered; anything else (status, timeout, refused connection, host not allowed)
    is a failed attempt, retried after `backoff(attempts)` until MAX_ATTEMPTS, then failed.
    Delivery is at least once (a crash after the POST and before the record means a retry
    after the lease): receivers deduplicate by `Tessera-Delivery`.
    """

    name = "webhook-dispatcher"

    def __init__(
        self,
        *,
        view: WebhookOutboxView,
        sender: WebhookSender,
        vault: SecretVault,
        clock: Clock,
        allowed_hosts: Collection[str] | None = None,
        batch_size: int = 20,
    ) -> None:
        self.view = view
        self.sender = sender
        self.vault = vault
        self.clock = clock
        self.allowed_hosts = allowed_hosts
        self.batch_size = batch_size

    def run_once(self) -> DispatchResult:
        now = self.clock.now()
        claimed = self.view.claim_due(
            now=now, lease_until=now + timedelta(seconds=LEASE_SECONDS), limit=self.batch_size
        )
        delivered = retried = failed = 0
        for delivery in claimed:
            outcome = self._deliver(delivery)
            if outcome == "delivered":
                delivered += 1
            elif outcome == "failed":
                failed += 1
            else:
                retried += 1
        return DispatchResult(delivered, retried, failed)

    def _deliver(self, delivery: Delivery) -> str:
        subscription = self.view.subscription(delivery.webhook_id)
        http_status: int | None = None
        final = False
        if subscription is None or not subscription.active:
            error: str | None = "the subscription was deleted"
            final = True
        elif not host_allowed(subscription.url, self.allowed_hosts):
            error = "the URL's host is not in TESSERA_WEBHOOK_ALLOWED_HOSTS; not sent"
        else:
            try:
                secret = self.vault.open(
                    WebhookSubscription.secret_owner(subscription.org_id), subscription.secret_ref
                ).decode("utf-8")
            except SecretUnavailableError:
                secret = None
            if secret is None:
                error, final = "the signing secret is unavailable", True
            else:
                at = self.clock.now()
                body = delivery.payload.encode("utf-8")
                headers = {
                    "Content-Type": "application/json",
                    "User-Agent": "Tessera-Webhooks/1",
                    SIGNATURE_HEADER: sign(secret, body, timestamp=int(at.timestamp())),
                    "Tessera-Delivery": str(delivery.delivery_id),
                    "Tessera-Event": delivery.event_type,
                }
                response = self.sender.post(subscription.url, body=body, headers=headers)
                http_status, error = response.status, response.error
                if response.ok:
                    error = None
                elif error is None:
                    error = f"the receiver answered {response.status}"
        now = self.clock.now()
        attempts = delivery.attempts + 1
        if error is None:
            status, next_at = "delivered", None
        elif final or attempts >= MAX_ATTEMPTS:
            status, next_at = "failed", None
        else:
            status, next_at = "pending", now + backoff(attempts)
        self.view.record_attempt(
            delivery,
            at=now,
            status=status,
            http_status=http_status,
            error=error,
            next_attempt_at=next_at,
        )
        if error is not None:
            log.info("webhook delivery %s attempt %d: %s", delivery.delivery_id, attempts, error)
        return status if status != "pending" else "retried"

    def run_forever(self, stop: threading.Event, *, interval: float = 1.0) -> None:
        """Deliver until `stop` is set; errors are logged and retried."""
        while not stop.is_set():
            try:
                if self.run_once().total:
                    continue
            except Exception:  # a database hiccup must not end the dispatcher; it retries
                log.exception("webhook dispatcher failed; retrying")
                stop.wait(min(5.0, interval * 5))
                continue
            stop.wait(interval)


# --- use cases ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewWebhook:
    webhook_id: UUID
    url: str
    events: list[str]
    description: str | None
    secret: str  # shown once


@dataclass(frozen=True, slots=True)
class CreateWebhook:
    """An administrator subscribes a URL; the secret is sealed into the event, shown once."""

    app: IdentityApplication
    vault: SecretVault
    secrets: SecretGenerator
    ids: IdGenerator
    clock: Clock
    allowed_hosts: Collection[str] | None = None

    def __call__(
        self, *, principal: Principal, url: str, events: list[str], description: str | None
    ) -> NewWebhook:
        principal.require_admin()
        if "\x00" in url or (description is not None and "\x00" in description):
            raise InvalidRequestError("the URL and description cannot contain NUL characters")
        try:
            check_url(url)
        except WebhookError as error:
            raise InvalidRequestError(str(error)) from None
        if not host_allowed(url, self.allowed_hosts):
            raise InvalidRequestError(
                "this server delivers webhooks only to the hosts in TESSERA_WEBHOOK_ALLOWED_HOSTS"
            )
        secret = "whsec_" + self.secrets.otp_secret(32).hex()
        owner = WebhookSubscription.secret_owner(principal.org_id)
        try:
            subscription = WebhookSubscription.create(
                webhook_id=self.ids.new_id(),
                org_id=principal.org_id,
                url=url,
                events=events,
                description=description,
                secret_ref=self.vault.seal(owner, secret.encode("utf-8")),
                by=f"key:{principal.key_id}",
                at=self.clock.now(),
            )
        except WebhookError as error:
            raise InvalidRequestError(str(error)) from None
        self.app.save(subscription)
        return NewWebhook(
            subscription.id, subscription.url, list(subscription.events), description, secret
        )


def _owned(app: IdentityApplication, webhook_id: UUID, principal: Principal) -> WebhookSubscription:
    found = app.get_webhook(webhook_id, org_id=principal.org_id)
    if found.deleted:
        raise NotFoundError("webhook")
    return found


@dataclass(frozen=True, slots=True)
class DeleteWebhook:
    app: IdentityApplication
    clock: Clock

    def __call__(self, *, principal: Principal, webhook_id: UUID) -> None:
        principal.require_admin()
        subscription = _owned(self.app, webhook_id, principal)
        subscription.delete(by=f"key:{principal.key_id}", at=self.clock.now())
        self.app.save_changed(subscription)


class ReadWebhooks:
    """An administrator lists subscriptions and a subscription's recent deliveries.

    With the projection inline, a read first applies pending events (read-your-writes).
    """

    def __init__(
        self,
        *,
        app: IdentityApplication,
        view: WebhookOutboxView,
        catch_up: Callable[[], object] | None = None,
    ) -> None:
        self.app = app
        self.view = view
        self._catch_up = catch_up

    def _fresh(self) -> None:
        if self._catch_up is not None:
            self._catch_up()

    def subscriptions(self, *, principal: Principal) -> list[Subscription]:
        principal.require_admin()
        self._fresh()
        return self.view.subscriptions(principal.org_id)

    def deliveries(self, *, principal: Principal, webhook_id: UUID, limit: int) -> list[Delivery]:
        principal.require_admin()
        _owned(self.app, webhook_id, principal)
        self._fresh()
        return self.view.deliveries(webhook_id, limit=limit)


class BackgroundDispatcher(BackgroundLoop):
    """Runs the dispatcher in a daemon thread (servers in inline mode, `projections run`)."""

    def __init__(self, dispatcher: WebhookDispatcher, *, interval: float = 1.0) -> None:
        self.dispatcher = dispatcher
        super().__init__(
            functools.partial(dispatcher.run_forever, interval=interval),
            name="webhook-dispatcher",
        )
