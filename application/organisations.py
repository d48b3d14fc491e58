"""Use cases of tenants: create an organisation, authenticate its keys, read and change policy."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from application.errors import (
    ForbiddenError,
    InvalidRequestError,
    UnauthorizedError,
)
from application.identity import IdentityApplication, retry_on_conflict
from application.ports import Clock, IdGenerator, SecretGenerator, SecretVault
from domain.account import Account
from domain.organisation import ApiKey, Organisation, OrganisationError
from domain.policy import Policy, PolicyError

#: Revoking a key takes effect in every process within this many seconds.
KEY_CACHE_SECONDS = 10.0


def hash_api_key(api_key: str) -> str:
    """Keys are 256-bit random strings, so a fast unsalted hash is enough (no guessing)."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    org_id: UUID
    key_id: UUID
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require_admin(self) -> None:
        if not self.is_admin:
            raise ForbiddenError("this call needs an administrator key")


@dataclass(frozen=True, slots=True)
class NewOrganisation:
    org_id: UUID
    name: str
    api_key: str
    admin_api_key: str


@dataclass(frozen=True, slots=True)
class CreateOrganisation:
    """A tenant with its default policy, an application key and an administrator key."""

    app: IdentityApplication
    ids: IdGenerator
    secrets: SecretGenerator
    clock: Clock

    def __call__(self, *, name: str) -> NewOrganisation:
        now = self.clock.now()
        try:
            organisation = Organisation.create(org_id=self.ids.new_id(), name=name, at=now)
        except OrganisationError as error:
            raise InvalidRequestError(str(error)) from None
        policy = Policy.default_for(organisation.id)
        keys = {role: self.secrets.api_key() for role in ("application", "admin")}
        api_keys = [
            ApiKey.issue(
                key_hash=hash_api_key(key),
                org_id=organisation.id,
                role=role,
                label=f"initial {role} key",
                at=now,
            )
            for role, key in keys.items()
        ]
        self.app.save(organisation, policy, *api_keys)
        return NewOrganisation(
            org_id=organisation.id,
            name=organisation.name,
            api_key=keys["application"],
            admin_api_key=keys["admin"],
        )


@dataclass(frozen=True, slots=True)
class IssueApiKey:
    app: IdentityApplication
    secrets: SecretGenerator
    clock: Clock

    def __call__(self, *, org_id: UUID, role: str, label: str) -> tuple[UUID, str]:
        self.app.get_organisation(org_id)
        key = self.secrets.api_key()
        try:
            api_key = ApiKey.issue(
                key_hash=hash_api_key(key),
                org_id=org_id,
                role=role,
                label=label,
                at=self.clock.now(),
            )
        except OrganisationError as error:
            raise InvalidRequestError(str(error)) from None
        self.app.save(api_key)
        return api_key.id, key


@dataclass(frozen=True, slots=True)
class AuthenticateApiKey:
    """Resolve a bearer key to its organisation and role, with a short in-process cache."""

    app: IdentityApplication
    _cache: dict[str, tuple[float, Principal | None]] = field(default_factory=dict)

    def __call__(self, api_key: str | None) -> Principal:
        if not api_key:
            raise UnauthorizedError("an API key is required")
        key_hash = hash_api_key(api_key)
        now = time.monotonic()
        cached = self._cache.get(key_hash)
        if cached is not None and now - cached[0] < KEY_CACHE_SECONDS:
            principal = cached[1]
        else:
            found = self.app.find_api_key(key_hash)
            principal = (
                None
                if found is None or found.revoked
                else Principal(org_id=found.org_id, key_id=found.id, role=found.role)
            )
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_hash] = (now, principal)
        if principal is None:
            raise UnauthorizedError("the API key is not valid")
        return principal


@dataclass(frozen=True, slots=True)
class GetPolicy:
    app: IdentityApplication

    def __call__(self, *, org_id: UUID) -> dict[str, Any]:
        return dict(self.app.get_policy(org_id).settings)


@dataclass(frozen=True, slots=True)
class ChangePolicy:
    """An administrator changes settings; each change is an event with its author."""

    app: IdentityApplication
    clock: Clock

    def __call__(self, *, principal: Principal, changes: dict[str, Any]) -> dict[str, Any]:
        principal.require_admin()

        def decide() -> dict[str, Any]:
            policy = self.app.get_policy(principal.org_id)
            try:
                policy.change(changes, by=f"key:{principal.key_id}", at=self.clock.now())
            except PolicyError as error:
                raise InvalidRequestError(str(error)) from None
            self.app.save_changed(policy)
            self.app.forget_policy(principal.org_id)
            return dict(policy.settings)

        return retry_on_conflict(decide)


@dataclass(frozen=True, slots=True)
class EraseUser:
    """Revoke every authenticator of a user and crypto-shred their secrets."""

    app: IdentityApplication
    vault: SecretVault
    clock: Clock

    def __call__(self, *, org_id: UUID, user_id: str, by: str) -> None:
        def decide() -> None:
            account = self.app.find_account(org_id, user_id)
            if account is None:
                return  # erasing an unknown user succeeds too: existence is never revealed
            enrolments = self.app.enrolments_of(account)
            now = self.clock.now()
            for enrolment in enrolments:
                enrolment.revoke(by=by, at=now)
                account.remove_enrolment(enrolment.id)
            self.app.save_changed(account, *enrolments)

        retry_on_conflict(decide)
        self.vault.shred(Account.create_id(org_id, user_id))
