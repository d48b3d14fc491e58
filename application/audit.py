"""Audit trail: every domain event as a record, hash-chained per organisation; never a secret."""

from __future__ import annotations

import hashlib
import json
from abc import abstractmethod
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any
from uuid import UUID

from eventsourcing.domain import CanMutateAggregate
from eventsourcing.persistence import Tracking, TrackingRecorder

from application.errors import InvalidRequestError, NotFoundError
from application.organisations import Principal
from domain.account import Account
from domain.administrator import Administrator
from domain.authentication import AuthenticationSession
from domain.credential import CredentialBinding
from domain.delivery import Delivery, ProviderMessage
from domain.enrolment import Enrolment
from domain.organisation import ApiKey, Organisation
from domain.policy import Policy
from domain.portal import PortalSession
from domain.webhook import WebhookSubscription

GENESIS_HASH = "0" * 64
OUTCOMES = ("success", "failure", "info")
ACTOR_TYPES = ("user", "application_key", "administrator", "system")


@dataclass(frozen=True, slots=True)
class Subject:
    """What the trail remembers of an aggregate, so later events can name its org and user.

    Filled from creating events (`Enrolment.Started`, `AuthenticationSession.Started`, ...):
    most later events carry only the aggregate id.
    """

    aggregate_id: UUID
    org_id: UUID
    kind: str  # "enrolment" | "authentication" | "account" | "policy" | "organisation" | "api_key"
    user_id: str | None = None
    method: str | None = None
    role: str | None = None
    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One event as an auditor reads it: who did what to whom, when, and how it went."""

    org_id: UUID
    position: int  # the event's notification id
    event_id: str  # "<aggregate id>/<version>": an event's identity in the store
    at: datetime
    subject_id: UUID
    user_id: str | None
    actor_type: str
    actor_id: str | None
    action: str
    outcome: str
    method: str | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any] = field(default_factory=dict)

    def texts(self) -> tuple[str, str, str]:
        """The organisation id, time (UTC, ISO 8601) and subject id as the record stores them."""
        return str(self.org_id), iso(self.at), str(self.subject_id)

    def canonical(
        self, seq: int, prev_hash: str, *, texts: tuple[str, str, str] | None = None
    ) -> bytes:
        """The bytes the chain hashes: every field, sorted keys, no whitespace, UTC times.

        Exactly `json.dumps(fields, sort_keys=True, separators=(",", ":"))` of the fields
        (ASCII, `\\uXXXX` escapes), written out by hand: it is a third of a rebuild's cost
        otherwise. The keys below are in sorted order; `canonical_json` is the reference.
        `texts` is `self.texts()`, for a caller that has it already.
        """
        if type(self.position) is not int or type(seq) is not int:
            return self.canonical_json(seq, prev_hash)
        org, at, subject = texts or self.texts()
        try:
            details = self.details
            return (
                f'{{"action":{_text(self.action)},"actor_id":{_optional(self.actor_id)},'
                f'"actor_type":{_text(self.actor_type)},"at":{_text(at)},'
                f'"details":{"{}" if type(details) is dict and not details else _compact(details)},'
                f'"event_id":{_text(self.event_id)},"ip":{_optional(self.ip)},'
                f'"method":{_optional(self.method)},"org_id":{_text(org)},'
                f'"outcome":{_text(self.outcome)},"position":{self.position},'
                f'"prev_hash":{_text(prev_hash)},"seq":{seq},'
                f'"subject_id":{_text(subject)},'
                f'"user_agent":{_optional(self.user_agent)},'
                f'"user_id":{_optional(self.user_id)}}}'
            ).encode("ascii")
        except TypeError:  # a field of an unexpected type: the reference encoder decides
            return self.canonical_json(seq, prev_hash)

    def canonical_json(self, seq: int, prev_hash: str) -> bytes:
        """The reference form of `canonical`, through the json module."""
        fields = {
            "org_id": str(self.org_id),
            "seq": seq,
            "position": self.position,
            "event_id": self.event_id,
            "at": iso(self.at),
            "subject_id": str(self.subject_id),
            "user_id": self.user_id,
            "actor_type": self.actor_type,
            "actor_id": self.actor_id,
            "action": self.action,
            "outcome": self.outcome,
            "method": self.method,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "details": self.details,
            "prev_hash": prev_hash,
        }
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")


_text = encode_basestring_ascii  # a str as a JSON string, as json.dumps writes it


def _optional(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def _not_serialisable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encoder(item_separator: str, key_separator: str) -> Callable[[Any], str]:
    """json.dumps(value, sort_keys=True, separators=...) without building an encoder per call:
    the json module's own C encoder, made once (no check for cycles: these values have none)."""
    make = c_make_encoder
    if make is None:  # no C accelerator (not CPython): the json module itself
        separators = (item_separator, key_separator)
        return lambda value: json.dumps(value, sort_keys=True, separators=separators)
    encode = make(
        None,  # markers: no cycle detection
        _not_serialisable,
        encode_basestring_ascii,
        None,  # indent
        key_separator,
        item_separator,
        True,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan, as json.dumps
    )
    return lambda value: "".join(encode(value, 0))


_compact = _encoder(",", ":")
#: How a record's details are stored beside it: json.dumps(details, sort_keys=True).
stored_details = _encoder(", ", ": ")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A stored entry: its place in its organisation's chain and the chain's hashes."""

    entry: AuditEntry
    seq: int
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        e = self.entry
        return {
            "org_id": str(e.org_id),
            "seq": self.seq,
            "position": e.position,
            "event_id": e.event_id,
            "at": iso(e.at),
            "subject_id": str(e.subject_id),
            "user_id": e.user_id,
            "actor_type": e.actor_type,
            "actor_id": e.actor_id,
            "action": e.action,
            "outcome": e.outcome,
            "method": e.method,
            "ip": e.ip,
            "user_agent": e.user_agent,
            "details": e.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def chain_hash(
    entry: AuditEntry, seq: int, prev_hash: str, *, texts: tuple[str, str, str] | None = None
) -> str:
    """sha256 over the previous hash and the record's canonical JSON (which includes it)."""
    canonical = entry.canonical(seq, prev_hash, texts=texts)
    return hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditQuery:
    org_id: UUID
    user_id: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    after_seq: int = 0
    limit: int = 100


class AuditTrailView(TrackingRecorder):
    """The audit trail's tables; every write records its tracking position in one transaction."""

    @abstractmethod
    def subjects(self, ids: Collection[UUID]) -> dict[UUID, Subject]:
        """The known subjects among `ids`."""

    @abstractmethod
    def append(
        self,
        entries: Sequence[AuditEntry],
        subjects: Sequence[Subject],
        tracking: Tracking,
        *,
        first: int,
    ) -> None:
        """Record the tracking position, the new subjects and the entries, chained per
        organisation, in one transaction. The batch holds the events from notification id
        `first` to `tracking`; when any of them was applied before, raises IntegrityError and
        writes nothing: an event is applied exactly once."""

    @abstractmethod
    def query(self, query: AuditQuery) -> list[AuditRecord]:
        """One organisation's records matching the filters, by `seq`, after `after_seq`."""

    @abstractmethod
    def after_position(self, position: int, *, org_id: UUID, limit: int) -> list[AuditRecord]:
        """One organisation's records with a position after `position`, in position order."""

    @abstractmethod
    def chain(self, org_id: UUID) -> Iterator[AuditRecord]:
        """Every record of an organisation in `seq` order."""

    @abstractmethod
    def heads(self) -> dict[UUID, tuple[int, str]]:
        """Each organisation's last `seq` and hash, as recorded beside the chain."""

    @abstractmethod
    def reset(self) -> None:
        """Delete every record, subject, chain head and the tracking position."""

    @abstractmethod
    def close(self) -> None:
        """Release the view's connections."""


# --- events to entries -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Described:
    entry: AuditEntry
    new_subject: Subject | None = None


Lookup = Callable[[UUID], Subject | None]


def _actor(by: str | None, lookup: Lookup, default: str = "user") -> tuple[str, str | None]:
    """An event's `by` ("key:<uuid>", "admin:<user id>" or "user") as an actor type and id."""
    if by is None:
        return default, None
    if by.startswith("admin:"):  # an administrator signed in to the admin area
        return "administrator", by[6:]
    if by.startswith("key:"):
        key_id = by[4:]
        try:
            key = lookup(UUID(key_id))
        except ValueError:
            key = None
        role = key.role if key is not None else None
        return ("administrator" if role == "admin" else "application_key"), key_id
    if by == "user":
        return "user", None
    return "system", by


#: action, outcome and default actor of each event class whose subject already exists.
_FOLLOWING: dict[type[Any], tuple[str, str, str]] = {
    Enrolment.Confirmed: ("enrolment.confirmed", "success", "user"),
    Enrolment.CodeAccepted: ("enrolment.code_accepted", "success", "user"),
    Enrolment.CodeRejected: ("enrolment.code_rejected", "failure", "user"),
    Enrolment.Locked: ("enrolment.locked", "failure", "system"),
    Enrolment.FailuresCleared: ("enrolment.failures_cleared", "info", "system"),
    Enrolment.Unlocked: ("enrolment.unlocked", "success", "administrator"),
    Enrolment.Resynchronised: ("enrolment.resynchronised", "success", "user"),
    Enrolment.Revoked: ("enrolment.revoked", "success", "application_key"),
    Account.EnrolmentAdded: ("account.enrolment_added", "info", "system"),
    Account.EnrolmentRemoved: ("account.enrolment_removed", "info", "system"),
    Account.FailureRecorded: ("account.failure_recorded", "failure", "user"),
    Account.FailuresCleared: ("account.failures_cleared", "success", "user"),
    AuthenticationSession.FactorVerified: ("authentication.factor_verified", "success", "user"),
    AuthenticationSession.AttemptFailed: ("authentication.attempt_failed", "failure", "user"),
    AuthenticationSession.Satisfied: ("authentication.satisfied", "success", "user"),
    AuthenticationSession.Denied: ("authentication.denied", "failure", "system"),
    AuthenticationSession.Expired: ("authentication.expired", "info", "system"),
    Policy.Changed: ("policy.changed", "success", "administrator"),
    ApiKey.Revoked: ("api_key.revoked", "success", "administrator"),
    WebhookSubscription.Deleted: ("webhook.deleted", "success", "administrator"),
    Administrator.LinkIssued: ("administrator.link_issued", "success", "system"),
    Administrator.Enrolled: ("administrator.enrolled", "success", "user"),
    Administrator.SignedIn: ("administrator.signed_in", "success", "user"),
    Administrator.Removed: ("administrator.removed", "success", "administrator"),
    Administrator.Reappointed: ("administrator.reappointed", "success", "administrator"),
    # WebAuthn (ADR 15)
    Enrolment.Renamed: ("enrolment.renamed", "success", "user"),
    CredentialBinding.Rebound: ("credential.rebound", "success", "user"),
    Enrolment.RegistrationRequested: ("enrolment.registration_requested", "info", "user"),
    Enrolment.CredentialRegistered: ("enrolment.credential_registered", "success", "user"),
    Enrolment.AssertionAccepted: ("enrolment.assertion_accepted", "success", "user"),
    Enrolment.CloneSuspected: ("enrolment.clone_suspected", "failure", "system"),
    Enrolment.Suspended: ("enrolment.suspended", "failure", "system"),
    AuthenticationSession.WebAuthnRequested: ("authentication.webauthn_requested", "info", "user"),
    AuthenticationSession.KeyVerified: ("authentication.key_verified", "success", "user"),
    # SMS, voice and email codes (ADR 17)
    Enrolment.DestinationRecorded: ("enrolment.destination_recorded", "info", "user"),
    Enrolment.CodeIssued: ("enrolment.code_sent", "info", "user"),
    Enrolment.CodeMissed: ("enrolment.code_missed", "failure", "user"),
    Enrolment.CodeUsed: ("enrolment.code_used", "success", "user"),
    AuthenticationSession.CodeSent: ("authentication.code_sent", "info", "user"),
    AuthenticationSession.CodeMissed: ("authentication.code_missed", "failure", "user"),
    Delivery.Attempted: ("delivery.attempted", "info", "system"),
    Delivery.Refused: ("delivery.refused", "failure", "system"),
    Delivery.StatusReported: ("delivery.status_reported", "info", "system"),
    # the self-service portal (ADR 16)
    PortalSession.Redeemed: ("portal.opened", "success", "user"),
    PortalSession.ActivityRecorded: ("portal.active", "info", "user"),
    PortalSession.FactorVerified: ("portal.factor_verified", "success", "user"),
    PortalSession.SetupStarted: ("portal.setup_started", "info", "user"),
    PortalSession.Ended: ("portal.ended", "info", "user"),
}


def _no_details(domain_event: Any) -> dict[str, Any]:
    return {}


def _code_details(domain_event: Any) -> dict[str, Any]:
    code = domain_event.code
    return {
        "channel": code["channel"],
        "enrolment_id": code["enrolment_id"],
        "delivery_id": code["delivery_id"],
    }


def _enrolment_details(domain_event: Any) -> dict[str, Any]:
    return {"enrolment_id": str(domain_event.enrolment_id)}


#: Only fields that are safe for ever: never a secret, code, moving factor or token id. The
#: first class an event is an instance of decides.
_DETAILS: tuple[tuple[type[Any] | tuple[type[Any], ...], Callable[[Any], dict[str, Any]]], ...] = (
    (Enrolment.Locked, lambda e: {"failures": e.failures}),
    (AuthenticationSession.FactorVerified, _enrolment_details),
    (AuthenticationSession.Satisfied, lambda e: {"aal": e.aal, "amr": list(e.amr)}),
    (AuthenticationSession.Denied, lambda e: {"reason": e.reason}),
    ((Account.EnrolmentAdded, Account.EnrolmentRemoved), _enrolment_details),
    # names only: values may be sensitive
    (Policy.Changed, lambda e: {"settings": sorted(e.changes)}),
    (Enrolment.Renamed, lambda e: {"label": e.label}),
    (CredentialBinding.Rebound, _enrolment_details),
    (
        Enrolment.RegistrationRequested,  # never the challenge
        lambda e: {
            "user_verification": e.user_verification,
            "resident_key": e.resident_key,
            "attachment": e.attachment,
        },
    ),
    (
        Enrolment.CredentialRegistered,  # the model and flags, never the key
        lambda e: {
            k: e.credential.get(k)
            for k in (
                "aaguid",
                "name",
                "fmt",
                "attestation_type",
                "attested",
                "backup_eligible",
                "backed_up",
                "uv_required",
                "transports",
            )
        },
    ),
    (
        Enrolment.AssertionAccepted,
        lambda e: {"user_verified": e.user_verified, "backed_up": e.backed_up},
    ),
    (
        Enrolment.CloneSuspected,
        lambda e: {
            "stored_count": e.stored_count,
            "presented_count": e.presented_count,
            "rejected": e.rejected,
        },
    ),
    (Enrolment.Suspended, lambda e: {"reason": e.reason}),
    (
        AuthenticationSession.WebAuthnRequested,
        lambda e: {"offered": len(e.credential_ids), "user_verification": e.user_verification},
    ),
    (
        AuthenticationSession.KeyVerified,
        lambda e: {
            "enrolment_id": str(e.enrolment_id),
            "user_id": e.user_id,
            "aal": e.aal,
            "amr": list(e.amr),
        },
    ),
    (
        Enrolment.DestinationRecorded,
        lambda e: {"destination": e.masked, "region": e.region, "number_type": e.number_type},
    ),
    ((Enrolment.CodeIssued, AuthenticationSession.CodeSent), _code_details),  # never the hash
    (
        Delivery.Attempted,
        lambda e: {
            "provider": e.provider,
            "accepted": e.accepted,
            "error": e.error,
            "elapsed_ms": e.elapsed_ms,
        },
    ),
    (Delivery.Refused, lambda e: {"reason": e.reason, "detail": e.detail}),
    (
        Delivery.StatusReported,
        lambda e: {"provider": e.provider, "status": e.status, "error_code": e.error_code},
    ),
    (
        PortalSession.FactorVerified,
        lambda e: {
            "enrolment_id": str(e.enrolment_id),
            "authentication_id": str(e.authentication_id),
        },
    ),
    (PortalSession.SetupStarted, _enrolment_details),
    (PortalSession.Ended, lambda e: {"reason": e.reason}),
)


Created = tuple[Subject, str, dict[str, Any]]


def _enrolment_started(e: Any, aggregate_id: UUID) -> Created:
    subject = Subject(aggregate_id, e.org_id, "enrolment", user_id=e.user_id, method=e.method)
    details = {
        "label": e.label,
        "algorithm": e.algorithm,
        "digits": e.digits,
        "period": e.period,
    }  # secret_ref never leaves the event store
    return subject, "enrolment.started", details


def _authentication_started(e: Any, aggregate_id: UUID) -> Created:
    context = e.context
    subject = Subject(
        aggregate_id,
        e.org_id,
        "authentication",
        user_id=e.user_id,
        ip=context.get("ip"),
        user_agent=context.get("user_agent"),
    )
    details = {
        "operation": e.operation,
        "required_aal": e.required_aal,
        "methods": list(e.methods),
        "risk_level": e.risk.get("level"),
        "risk_score": e.risk.get("score"),
    }
    return subject, "authentication.started", details


def _account_opened(e: Any, aggregate_id: UUID) -> Created:
    return Subject(aggregate_id, e.org_id, "account", e.user_id), "account.opened", {}


def _policy_created(e: Any, aggregate_id: UUID) -> Created:
    return Subject(aggregate_id, e.org_id, "policy"), "policy.created", {}


def _organisation_created(e: Any, aggregate_id: UUID) -> Created:
    subject = Subject(aggregate_id, aggregate_id, "organisation")
    return subject, "organisation.created", {"name": e.name}


def _webhook_created(e: Any, aggregate_id: UUID) -> Created:
    subject = Subject(aggregate_id, e.org_id, "webhook")
    details = {"url": e.url, "events": list(e.events)}
    return subject, "webhook.created", details  # never the secret_ref


def _administrator_appointed(e: Any, aggregate_id: UUID) -> Created:
    subject = Subject(aggregate_id, e.org_id, "administrator", e.user_id)
    return subject, "administrator.appointed", {}  # the link's hash stays in the store


def _api_key_issued(e: Any, aggregate_id: UUID) -> Created:
    subject = Subject(aggregate_id, e.org_id, "api_key", role=e.role)
    return subject, "api_key.issued", {"role": e.role, "label": e.label}


#: Events that create a subject; the first class an event is an instance of decides.
def _binding_created(e: Any, aggregate_id: UUID) -> Created:
    subject = Subject(aggregate_id, e.org_id, "credential", user_id=e.user_id, method="webauthn")
    return subject, "credential.bound", {"enrolment_id": str(e.enrolment_id)}


def _delivery_requested(e: Any, aggregate_id: UUID) -> Created:
    subject = Subject(aggregate_id, e.org_id, "delivery", user_id=e.user_id, method=e.channel)
    details = {
        "purpose": e.purpose,
        "subject_id": str(e.subject_id),
        "destination": e.masked_to,
        "region": e.region,
        "locale": e.locale,
    }
    return subject, "delivery.requested", details


def _provider_message(e: Any, aggregate_id: UUID) -> Created:
    subject = Subject(aggregate_id, e.org_id, "provider_message")
    return subject, "delivery.provider_message_recorded", {"delivery_id": str(e.delivery_id)}


def _portal_issued(e: Any, aggregate_id: UUID) -> Created:
    subject = Subject(aggregate_id, e.org_id, "portal", user_id=e.user_id)
    return subject, "portal.link_issued", {"return_url": e.return_url}  # never the link hash


_CREATORS: tuple[tuple[type[Any], Callable[[Any, UUID], Created]], ...] = (
    (CredentialBinding.Bound, _binding_created),
    (Delivery.Requested, _delivery_requested),
    (ProviderMessage.Recorded, _provider_message),
    (PortalSession.Issued, _portal_issued),
    (Enrolment.Started, _enrolment_started),
    (AuthenticationSession.Started, _authentication_started),
    (Account.Opened, _account_opened),
    (Policy.Created, _policy_created),
    (Organisation.Created, _organisation_created),
    (WebhookSubscription.Created, _webhook_created),
    (Administrator.Appointed, _administrator_appointed),
    (ApiKey.Issued, _api_key_issued),
)


@dataclass(frozen=True, slots=True)
class _Rule:
    """How events of one class are described (worked out once per class)."""

    create: Callable[[Any, UUID], Created] | None
    details: Callable[[Any], dict[str, Any]]
    following: tuple[str, str, str] | None  # action, outcome, default actor; None: by kind
    suffix: str  # the action's suffix when `following` is None


_RULES: dict[type[Any], _Rule] = {}


def _rule(cls: type[Any]) -> _Rule:
    rule = _RULES.get(cls)
    if rule is None:
        create = next((f for c, f in _CREATORS if issubclass(cls, c)), None)
        details = next((f for c, f in _DETAILS if issubclass(cls, c)), _no_details)
        rule = _RULES[cls] = _Rule(create, details, _FOLLOWING.get(cls), cls.__name__.lower())
    return rule


def describe(
    domain_event: CanMutateAggregate[UUID], position: int, lookup: Lookup
) -> Described | None:
    """The audit entry of one event (None when its organisation is unknown)."""
    rule = _rule(type(domain_event))
    aggregate_id = domain_event.originator_id
    event_id = f"{aggregate_id}/{domain_event.originator_version}"
    by = getattr(domain_event, "by", None)
    if rule.create is not None:
        subject, action, details = rule.create(domain_event, aggregate_id)
        kind = subject.kind
        actor_type, actor_id = _actor(
            by,  # only webhooks' creating events name an author
            lookup,
            "user" if kind in ("enrolment", "authentication") else "system",
        )
        entry = AuditEntry(
            subject.org_id,
            position,
            event_id,
            domain_event.timestamp,
            aggregate_id,
            subject.user_id,
            actor_type,
            actor_id,
            action,
            "info" if kind == "authentication" else "success",
            subject.method,
            subject.ip,
            subject.user_agent,
            details,
        )
        return Described(entry, subject)
    subject_or_none = lookup(aggregate_id)
    if subject_or_none is None:
        return None
    subject = subject_or_none
    if rule.following is not None:
        action, outcome, default_actor = rule.following
    else:
        action, outcome, default_actor = f"{subject.kind}.{rule.suffix}", "info", "system"
    actor_type, actor_id = _actor(by, lookup, default_actor)
    method = getattr(domain_event, "method", None) or subject.method
    entry = AuditEntry(
        subject.org_id,
        position,
        event_id,
        domain_event.timestamp,
        aggregate_id,
        subject.user_id,
        actor_type,
        actor_id,
        action,
        outcome,
        method,
        subject.ip,
        subject.user_agent,
        rule.details(domain_event),
    )
    return Described(entry)


# --- the projection ----------------------------------------------------------------------


class AuditTrailProjection:
    """Turns batches of events into audit entries and hands each batch to the view at once.

    Fed by `ProjectionFollower` (polling, any store). Events of an unknown organisation (none
    today) still advance the position, so a batch is always tracked.
    """

    name = "audit"
    #: Subjects remembered between batches (never change once created, so they cannot go
    #: stale); beyond this many the memory is dropped and refilled from the view.
    max_remembered = 20_000

    def __init__(self, view: AuditTrailView) -> None:
        self.view = view
        self._remembered: dict[UUID, Subject] = {}

    def process_batch(self, events: Sequence[tuple[Any, Tracking]]) -> None:
        if not events:
            return
        remembered = self._remembered
        if len(remembered) > self.max_remembered:
            remembered.clear()
        wanted = {e.originator_id for e, _ in events if _rule(type(e)).create is None} | _key_ids(
            events
        )
        missing = {i for i in wanted if i not in remembered}
        if missing:
            remembered.update(self.view.subjects(missing))
        new_subjects: list[Subject] = []
        entries: list[AuditEntry] = []
        lookup = remembered.get
        for domain_event, tracking in events:
            described = describe(domain_event, tracking.notification_id, lookup)
            if described is None:
                continue
            entries.append(described.entry)
            if described.new_subject is not None:
                remembered[described.new_subject.aggregate_id] = described.new_subject
                new_subjects.append(described.new_subject)
        self.view.append(entries, new_subjects, events[-1][1], first=events[0][1].notification_id)

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.process_batch([(domain_event, tracking)])


def _key_ids(events: Sequence[tuple[Any, Tracking]]) -> set[UUID]:
    ids: set[UUID] = set()
    for domain_event, _ in events:
        by = getattr(domain_event, "by", None)
        if isinstance(by, str) and by.startswith("key:"):
            try:
                ids.add(UUID(by[4:]))
            except ValueError:
                continue
    return ids


# --- verification ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainBreak:
    org_id: UUID
    seq: int
    position: int | None
    reason: str

    def __str__(self) -> str:
        return (
            f"organisation {self.org_id}: chain broken at seq {self.seq}"
            f" (position {self.position}): {self.reason}"
        )


def verify_chain(view: AuditTrailView, org_id: UUID | None = None) -> list[ChainBreak]:
    """Walk each organisation's chain; the first break per organisation, if any."""
    heads = view.heads()
    breaks: list[ChainBreak] = []
    for org in [org_id] if org_id is not None else sorted(heads, key=str):
        found = _first_break(view.chain(org), org, heads.get(org))
        if found is not None:
            breaks.append(found)
    return breaks


def _first_break(
    records: Iterator[AuditRecord], org_id: UUID, head: tuple[int, str] | None
) -> ChainBreak | None:
    seq, previous = 0, GENESIS_HASH
    for record in records:
        seq += 1
        position = record.entry.position
        if record.seq != seq:
            return ChainBreak(org_id, seq, position, f"record {seq} is missing")
        if record.prev_hash != previous:
            return ChainBreak(org_id, seq, position, "it does not follow the previous record")
        if chain_hash(record.entry, record.seq, record.prev_hash) != record.hash:
            return ChainBreak(org_id, seq, position, "its content does not match its hash")
        previous = record.hash
    if head is not None and head != (seq, previous):
        return ChainBreak(org_id, seq + 1, None, f"records after {seq} are missing")
    return None


# --- reading -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditPage:
    records: list[AuditRecord]
    next_cursor: str | None


class ReadAuditTrail:
    """An administrator reads their organisation's trail: filtered pages, or a change feed.

    With the projection running inline, a read first applies pending events, so a caller
    sees its own writes; with an external projection process it reads what is projected.
    """

    feeds = ("audit",)

    def __init__(
        self, *, view: AuditTrailView, catch_up: Callable[[], object] | None = None
    ) -> None:
        self.view = view
        self._catch_up = catch_up

    def _fresh(self) -> None:
        if self._catch_up is not None:
            self._catch_up()

    def page(
        self,
        *,
        principal: Principal,
        user_id: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> AuditPage:
        principal.require_admin()
        _refuse_nul(user_id, action, outcome)
        self._fresh()
        records = self.view.query(
            AuditQuery(
                org_id=principal.org_id,
                user_id=user_id,
                action=action,
                outcome=outcome,
                since=_utc(since),
                until=_utc(until),
                after_seq=_cursor(cursor),
                limit=limit + 1,
            )
        )
        more = len(records) > limit
        records = records[:limit]
        return AuditPage(records, str(records[-1].seq) if more else None)

    def feed(
        self, *, principal: Principal, name: str, cursor: str | None, limit: int = 1000
    ) -> AuditPage:
        """A read model's changes after `cursor` (a position), oldest first."""
        principal.require_admin()
        if name not in self.feeds:
            raise NotFoundError("feed")
        self._fresh()
        records = self.view.after_position(_cursor(cursor), org_id=principal.org_id, limit=limit)
        last = str(records[-1].entry.position) if records else (cursor or "0")
        return AuditPage(records, last)


def _cursor(cursor: str | None) -> int:
    if cursor is None or cursor == "":
        return 0
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 15:
        raise InvalidRequestError("the cursor is not one this server handed out")
    return int(cursor)


def _utc(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    try:
        return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidRequestError("the time is out of range") from None


def _refuse_nul(*values: str | None) -> None:
    if any(v is not None and "\x00" in v for v in values):
        raise InvalidRequestError("filters cannot contain NUL characters")
