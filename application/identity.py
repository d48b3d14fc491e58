"""IdentityApplication: the event store, repository and unit of work for every aggregate."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import RecordConflictError
from eventsourcing.utils import get_topic

from application.errors import ConflictError, NotFoundError
from domain.account import Account
from domain.administrator import Administrator
from domain.authentication import AuthenticationSession
from domain.credential import CredentialBinding
from domain.delivery import Delivery, ProviderMessage
from domain.enrolment import Enrolment
from domain.organisation import ApiKey, Organisation
from domain.policy import DEFAULTS, Policy
from domain.portal import PortalSession
from domain.webhook import WebhookSubscription

T = TypeVar("T")
A = TypeVar("A", bound=Aggregate)

#: How long another process's policy change may take to apply to logins in this one.
POLICY_CACHE_SECONDS = 5.0
#: How often a use case reloads and re-decides after losing an optimistic-concurrency race.
CONFLICT_RETRIES = 5


def _project(aggregate: Any, domain_events: Iterable[Any]) -> Any:
    """eventsourcing's projector without its per-event runtime Protocol check (a hot path)."""
    for domain_event in domain_events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


class IdentityApplication(Application[UUID]):
    """Stores the aggregates' events; `save(a, b, ...)` commits several atomically."""

    name = "identity"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {
        Enrolment: 50,
        Account: 50,
        Policy: 20,
    }

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env=env)
        self._policies: dict[UUID, tuple[float, Policy]] = {}

    def _get(self, cls: type[A], aggregate_id: UUID, kind: str, org_id: UUID | None) -> A:
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id, projector_func=_project)
        except AggregateNotFoundError:
            raise NotFoundError(kind) from None
        if not isinstance(aggregate, cls):
            raise NotFoundError(kind)
        if org_id is not None and getattr(aggregate, "org_id", org_id) != org_id:
            raise NotFoundError(kind)  # another organisation's: indistinguishable from unknown
        return aggregate

    def get_enrolment(self, enrolment_id: UUID, *, org_id: UUID) -> Enrolment:
        return self._get(Enrolment, enrolment_id, "enrolment", org_id)

    def get_session(self, session_id: UUID, *, org_id: UUID) -> AuthenticationSession:
        return self._get(AuthenticationSession, session_id, "authentication", org_id)

    def get_webhook(self, webhook_id: UUID, *, org_id: UUID) -> WebhookSubscription:
        return self._get(WebhookSubscription, webhook_id, "webhook", org_id)

    def get_organisation(self, org_id: UUID) -> Organisation:
        return self._get(Organisation, org_id, "organisation", None)

    def get_policy(self, org_id: UUID) -> Policy:
        """The current policy, as a copy that a command may change and save."""
        try:
            policy = self._get(Policy, Policy.create_id(org_id), "policy", org_id)
        except NotFoundError:
            return Policy.default_for(org_id)
        policy.settings = {**DEFAULTS, **policy.settings}  # settings added since it was saved
        return policy

    def read_policy(self, org_id: UUID) -> Policy:
        """The policy for decisions only (never to change), cached per process.

        Every login reads its organisation's one policy; re-reading and copying it each time
        serialised requests on the cache's fast-forward lock. A change reaches this process
        at once and other processes within POLICY_CACHE_SECONDS.
        """
        now = time.monotonic()
        cached = self._policies.get(org_id)
        if cached is not None and now - cached[0] < POLICY_CACHE_SECONDS:
            return cached[1]
        policy = self.get_policy(org_id)
        self._policies[org_id] = (now, policy)
        return policy

    def forget_policy(self, org_id: UUID) -> None:
        self._policies.pop(org_id, None)

    def find_account(self, org_id: UUID, user_id: str) -> Account | None:
        try:
            return self._get(Account, Account.create_id(org_id, user_id), "account", org_id)
        except NotFoundError:
            return None

    def account_for(self, org_id: UUID, user_id: str) -> Account:
        return self.find_account(org_id, user_id) or Account(org_id=org_id, user_id=user_id)

    def get_administrator(self, administrator_id: UUID) -> Administrator:
        return self._get(Administrator, administrator_id, "administrator", None)

    def find_administrator(self, org_id: UUID, user_id: str) -> Administrator | None:
        try:
            return self._get(
                Administrator, Administrator.create_id(org_id, user_id), "administrator", org_id
            )
        except NotFoundError:
            return None

    def find_portal_session(self, portal_id: UUID) -> PortalSession | None:
        try:
            return self._get(PortalSession, portal_id, "portal session", None)
        except NotFoundError:
            return None

    def find_api_key(self, key_hash: str) -> ApiKey | None:
        try:
            return self._get(ApiKey, ApiKey.create_id(key_hash), "api key", None)
        except NotFoundError:
            return None

    def enrolments_of(self, account: Account) -> list[Enrolment]:
        return [
            self.get_enrolment(enrolment_id, org_id=account.org_id)
            for enrolment_id in account.enrolment_ids
        ]

    def delivery_of(self, provider: str, provider_message_id: str) -> Delivery:
        """The delivery a provider's message id belongs to (status callbacks)."""
        ref = self._get(
            ProviderMessage,
            ProviderMessage.create_id(provider, provider_message_id),
            "message",
            None,
        )
        return self._get(Delivery, ref.delivery_id, "message", ref.org_id)

    def find_binding(self, org_id: UUID, credential_id: str) -> CredentialBinding | None:
        """The enrolment a WebAuthn credential id (base64url) belongs to in an organisation."""
        try:
            return self._get(
                CredentialBinding,
                CredentialBinding.create_id(org_id, credential_id),
                "credential",
                org_id,
            )
        except NotFoundError:
            return None

    def all_bindings(self) -> Iterator[CredentialBinding]:
        """Every organisation's WebAuthn credential bindings (for metadata re-checks)."""
        topic = get_topic(CredentialBinding.Bound)
        start = 1
        while True:
            page = self.recorder.select_notifications(start, 500, topics=[topic])
            if not page:
                return
            for notification in page:
                binding_id = UUID(str(notification.originator_id))
                yield self._get(CredentialBinding, binding_id, "credential", None)
            start = page[-1].id + 1

    def save_changed(self, *aggregates: Aggregate) -> None:
        """Save only the aggregates that have pending events, in one transaction."""
        changed = [a for a in aggregates if a.pending_events]
        if changed:
            self.save(*changed)


def retry_on_conflict(decide: Callable[[], T]) -> T:
    """Run a load-decide-save function again when another process saved first.

    Every accepted code is an event on a versioned aggregate, so of two racing requests
    the second save fails; the rerun reloads and re-checks, and a code already used then
    simply does not match.
    """
    for _ in range(CONFLICT_RETRIES):
        try:
            return decide()
        except RecordConflictError:
            continue
    raise ConflictError("too many concurrent changes; try again")
