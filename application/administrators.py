"""Use cases of the admin area: appoint an administrator, enrol them, sign in, keep a session."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from application.audit import ReadAuditTrail
from application.authentications import Caller, StartAuthentication
from application.enrolments import ConfirmOtpEnrolment, NewEnrolment, StartOtpEnrolment
from application.errors import (
    InvalidRequestError,
    NotFoundError,
    UnauthorizedError,
)
from application.identity import IdentityApplication, retry_on_conflict
from application.organisations import Principal
from application.otp import CodeChecker
from application.ports import Clock, PasswordHasher, RequestContext, SecretGenerator, SecretVault
from domain.administrator import (
    LINK_TTL,
    Administrator,
    AdministratorError,
    EnrolmentLinkError,
)
from domain.assurance import aal_for_factors

#: NIST SP 800-63B §5.1 (N-56): AAL2 allows 30 min idle and 12 h; the admin area is stricter.
IDLE_TIMEOUT = timedelta(minutes=15)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
#: The admin area is an AAL2 resource: password (verified here) + an OTP device (NIST N-2).
ADMIN_AAL = 2
MIN_PASSWORD = 12
MAX_PASSWORD = 128
#: The `client_id` recorded on the admin area's own authentication sessions.
ADMIN_CLIENT_ID = "tessera-admin"
#: Verified against when there is no administrator, so timing does not reveal one exists.
_NO_PASSWORD = "no administrator here"  # noqa: S105 - a decoy, never a credential


def hash_token(token: str) -> str:
    """Links and session ids carry 256 random bits, so an unsalted SHA-256 is enough."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SignInRefusedError(UnauthorizedError):
    """Wrong organisation, user, password or code: the answer never says which."""


@dataclass(frozen=True, slots=True)
class EnrolmentLink:
    token: str
    expires_at: datetime


def parse_link(token: str) -> tuple[UUID, str]:
    """A link token is `<administrator id>.<random>`: the id finds the aggregate to check it."""
    admin_part, _, secret = token.partition(".")
    try:
        admin_id = UUID(hex=admin_part)
    except ValueError:
        raise EnrolmentLinkError("the enrolment link is not valid") from None
    if not secret:
        raise EnrolmentLinkError("the enrolment link is not valid")
    return admin_id, hash_token(token)


@dataclass(frozen=True, slots=True)
class AppointAdministrator:
    """Give a user of an organisation the admin role and a one-time enrolment link (24 h);
    a removed administrator is appointed again and enrols afresh."""

    app: IdentityApplication
    secrets: SecretGenerator
    clock: Clock

    def __call__(self, *, org_id: UUID, user_id: str, by: str) -> EnrolmentLink:
        self.app.get_organisation(org_id)

        def decide() -> EnrolmentLink:
            now = self.clock.now()
            admin: Administrator | None = self.app.find_administrator(org_id, user_id)
            if admin is None:
                try:
                    admin = Administrator.appoint(org_id=org_id, user_id=user_id, by=by, at=now)
                except AdministratorError as error:
                    raise InvalidRequestError(str(error)) from None
            admin.reappoint(by=by, at=now)  # a removed administrator starts afresh
            token = f"{admin.id.hex}.{self.secrets.token()}"
            admin.issue_link(hash_token(token), at=now)
            self.app.save(admin)
            return EnrolmentLink(token=token, expires_at=now + LINK_TTL)

        return retry_on_conflict(decide)


def _linked_administrator(app: IdentityApplication, token: str, *, at: datetime) -> Administrator:
    admin_id, link_hash = parse_link(token)
    try:
        admin = app.get_administrator(admin_id)
    except NotFoundError:
        raise EnrolmentLinkError("the enrolment link is not valid") from None
    admin.check_link(link_hash, at=at)
    return admin


@dataclass(frozen=True, slots=True)
class StartAdministratorEnrolment:
    """Behind a valid link: start the administrator's TOTP enrolment (QR code to scan)."""

    app: IdentityApplication
    start_enrolment: StartOtpEnrolment
    clock: Clock

    def __call__(self, *, token: str) -> tuple[Administrator, NewEnrolment]:
        admin = _linked_administrator(self.app, token, at=self.clock.now())
        enrolment = self.start_enrolment(
            org_id=admin.org_id, user_id=admin.user_id, method="totp", label=admin.user_id
        )
        return admin, enrolment


@dataclass(frozen=True, slots=True)
class AdminIdentity:
    """Who signed in to the admin area, and how strongly."""

    org_id: UUID
    user_id: str
    aal: int
    amr: tuple[str, ...]
    auth_time: datetime

    @property
    def principal(self) -> Principal:
        """The administrator as a caller of the organisation's read models."""
        admin_id = Administrator.create_id(self.org_id, self.user_id)
        return Principal(org_id=self.org_id, key_id=admin_id, role="admin")


def _check_password_rules(password: str, confirm: str) -> None:
    if password != confirm:
        raise InvalidRequestError("the two passwords differ")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequestError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")


@dataclass(frozen=True, slots=True)
class EnrolAdministrator:
    """Use up the link: confirm the TOTP enrolment with a code and set the password.

    Possession of the link, the new OTP device and the new password together sign the
    administrator in at AAL2 (they just proved both factors).
    """

    app: IdentityApplication
    confirm_enrolment: ConfirmOtpEnrolment
    hasher: PasswordHasher
    vault: SecretVault
    clock: Clock

    def __call__(
        self, *, token: str, enrolment_id: UUID, code: str, password: str, confirm: str
    ) -> AdminIdentity:
        admin = _linked_administrator(self.app, token, at=self.clock.now())
        _check_password_rules(password, confirm)
        enrolment = self.app.get_enrolment(enrolment_id, org_id=admin.org_id)
        if enrolment.user_id != admin.user_id or enrolment.method != "totp":
            raise NotFoundError("enrolment")
        self.confirm_enrolment(org_id=admin.org_id, enrolment_id=enrolment_id, code=code)
        account_id = self.app.account_for(admin.org_id, admin.user_id).id
        password_ref = self.vault.seal(account_id, self.hasher.hash(password).encode("utf-8"))

        def decide() -> AdminIdentity:
            now = self.clock.now()
            current = _linked_administrator(self.app, token, at=now)
            current.enrol(
                parse_link(token)[1], enrolment_id=enrolment_id, password_ref=password_ref, at=now
            )
            current.record_sign_in(at=now)
            self.app.save(current)
            return AdminIdentity(
                org_id=current.org_id,
                user_id=current.user_id,
                aal=ADMIN_AAL,
                amr=("pwd", "otp", "mfa"),
                auth_time=now,
            )

        return retry_on_conflict(decide)


@dataclass(frozen=True, slots=True)
class SignInAdministrator:
    """Password (checked here with Argon2id) then TOTP (through StartAuthentication): AAL2.

    Both steps share the account's throttle, so wrong passwords and wrong codes count alike
    and the same back-off and lock apply (ADR 8).
    """

    app: IdentityApplication
    checker: CodeChecker
    hasher: PasswordHasher
    vault: SecretVault
    start_authentication: StartAuthentication
    clock: Clock

    def __call__(
        self, *, org_id: UUID, user_id: str, password: str, code: str, context: RequestContext
    ) -> AdminIdentity:
        try:
            self.app.get_organisation(org_id)  # no account is ever opened in an unknown one
        except NotFoundError:
            self.hasher.verify(self._decoy(), password)
            raise SignInRefusedError("the sign-in details are not valid") from None
        admin = self.app.find_administrator(org_id, user_id)
        password_ok = self._password_matches(admin, password)

        def judge_password() -> None:
            now = self.clock.now()
            policy = self.app.read_policy(org_id)
            account = self.app.account_for(org_id, user_id)
            self.checker.check_throttle(account, policy, at=now)
            if not password_ok:
                account.record_failure(at=now)
                self.app.save(account)
                raise SignInRefusedError("the sign-in details are not valid")

        retry_on_conflict(judge_password)
        if admin is None or admin.enrolment_id is None:  # unreachable: no password matched
            raise SignInRefusedError("the sign-in details are not valid")
        outcome = self.start_authentication(
            caller=Caller(org_id=org_id, client_id=ADMIN_CLIENT_ID),
            user_id=user_id,
            context=context,
            method="totp",
            code=code,
            enrolment_id=admin.enrolment_id,
        )
        session = outcome.session
        if session.status != "satisfied":
            raise SignInRefusedError("the sign-in did not reach the required assurance")
        # The session's own AAL follows the organisation's policy for its applications; here
        # Tessera itself verified the memorised secret, so password + OTP is AAL2 (NIST N-2).
        aal = aal_for_factors(session.verified_methods(), primary_factor_verified=True)
        if aal < ADMIN_AAL:
            raise SignInRefusedError("the sign-in did not reach the required assurance")

        def record() -> datetime:
            now = self.clock.now()
            current = self.app.find_administrator(org_id, user_id)
            if current is None or current.removed:  # removed while the code was checked
                raise SignInRefusedError("the sign-in details are not valid")
            current.record_sign_in(at=now)
            self.app.save(current)
            return now

        at = retry_on_conflict(record)
        return AdminIdentity(
            org_id=org_id, user_id=user_id, aal=aal, amr=("pwd", "otp", "mfa"), auth_time=at
        )

    def _password_matches(self, admin: Administrator | None, password: str) -> bool:
        if admin is None or admin.removed or not admin.is_enrolled or admin.password_ref is None:
            self.hasher.verify(self._decoy(), password)
            return False
        account_id = self.app.account_for(admin.org_id, admin.user_id).id
        stored = self.vault.open(account_id, admin.password_ref).decode("utf-8")
        return self.hasher.verify(stored, password)

    def _decoy(self) -> str:
        return _DECOY.setdefault("hash", self.hasher.hash(_NO_PASSWORD))


_DECOY: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class AdminSession:
    """A signed-in administrator's server-side session (only its id's hash is a key)."""

    identity: AdminIdentity
    csrf_token: str
    created_at: datetime
    last_seen: datetime


class AdminSessionStore(Protocol):
    """Where admin sessions live, keyed by the SHA-256 of the session id (never the id)."""

    def put(self, key: str, session: AdminSession) -> None: ...

    def touch(
        self, key: str, *, now: datetime, idle: timedelta, absolute: timedelta
    ) -> AdminSession | None:
        """The session with `last_seen` moved to `now`, unless it has been idle for `idle` or
        exists for `absolute` (then it is gone): None then, and for an unknown key."""
        ...

    def delete(self, key: str) -> None: ...

    def delete_for(self, org_id: UUID, user_id: str) -> int:
        """End every session of one administrator; how many there were."""
        ...

    def purge(self, *, now: datetime, idle: timedelta, absolute: timedelta) -> int:
        """Delete every expired session; how many there were."""
        ...


@dataclass(frozen=True, slots=True)
class HoldsAdminRole:
    """Whether a user is (still) an administrator of an organisation."""

    app: IdentityApplication

    def __call__(self, org_id: UUID, user_id: str) -> bool:
        admin = self.app.find_administrator(org_id, user_id)
        return admin is not None and not admin.removed


@dataclass(frozen=True, slots=True)
class AdminSessions:
    """Open, resume and close admin sessions: 15 min idle and 12 h absolute (NIST N-56).

    A session resumes only while its user holds the admin role, so a removal ends it at once
    in every server process, even one that raced the removal to open it.
    """

    store: AdminSessionStore
    secrets: SecretGenerator
    clock: Clock
    holds_role: Callable[[UUID, str], bool]

    def open(self, identity: AdminIdentity) -> tuple[str, AdminSession]:
        if identity.aal < ADMIN_AAL:
            raise SignInRefusedError("the admin area needs AAL2")
        now = self.clock.now()
        self.store.purge(now=now, idle=IDLE_TIMEOUT, absolute=ABSOLUTE_TIMEOUT)
        session_id = self.secrets.token()
        session = AdminSession(identity, self.secrets.token(), created_at=now, last_seen=now)
        self.store.put(hash_token(session_id), session)
        return session_id, session

    def resume(self, session_id: str | None) -> AdminSession | None:
        """The live session for this id, touched; None when unknown, idle, too old, or its
        user is no longer an administrator."""
        if not session_id:
            return None
        key = hash_token(session_id)
        session = self.store.touch(
            key, now=self.clock.now(), idle=IDLE_TIMEOUT, absolute=ABSOLUTE_TIMEOUT
        )
        if session is None:
            return None
        if not self.holds_role(session.identity.org_id, session.identity.user_id):
            self.store.delete(key)
            return None
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self.store.delete(hash_token(session_id))

    def end_all(self, org_id: UUID, user_id: str) -> int:
        """End every session of one administrator, in every server process."""
        return self.store.delete_for(org_id, user_id)


@dataclass(frozen=True, slots=True)
class RemoveAdministrator:
    """Take the admin role from a user: their sessions end at once and sign-in is refused.

    Recorded as `Administrator.Removed` (which the audit trail shows with who removed them);
    `by` is "admin:<user id>" from the admin area, "cli" from the command line. An
    administrator cannot remove themselves, so an organisation is never locked out by a slip.
    """

    app: IdentityApplication
    sessions: AdminSessions
    clock: Clock

    def __call__(self, *, org_id: UUID, user_id: str, by: str) -> None:
        self.app.get_organisation(org_id)
        if by == f"admin:{user_id}":
            raise InvalidRequestError("administrators cannot remove themselves")

        def decide() -> None:
            admin = self.app.find_administrator(org_id, user_id)
            if admin is None or admin.removed:
                raise NotFoundError("administrator")
            admin.remove(by=by, at=self.clock.now())
            self.app.save(admin)

        retry_on_conflict(decide)
        self.sessions.end_all(org_id, user_id)


@dataclass(frozen=True, slots=True)
class ListedAdministrator:
    user_id: str
    since: datetime  # appointed, or appointed again


#: The audit actions that change who holds the admin role.
_ROLE_ACTIONS = ("administrator.appointed", "administrator.reappointed", "administrator.removed")


@dataclass(frozen=True, slots=True)
class ListAdministrators:
    """An organisation's current administrators, as its audit trail records appointments and
    removals (for the admin area; the role itself is always checked on the aggregate)."""

    trail: ReadAuditTrail

    def __call__(self, *, principal: Principal, limit: int = 500) -> list[ListedAdministrator]:
        changes: list[tuple[int, str, str, datetime]] = []
        for action in _ROLE_ACTIONS:
            cursor: str | None = None
            while True:
                page = self.trail.page(
                    principal=principal, action=action, cursor=cursor, limit=limit
                )
                changes += [
                    (r.seq, r.entry.user_id or "", action, r.entry.at) for r in page.records
                ]
                cursor = page.next_cursor
                if cursor is None:
                    break
        current: dict[str, ListedAdministrator] = {}
        for _, user_id, action, at in sorted(changes):
            if action == "administrator.removed":
                current.pop(user_id, None)
            else:
                current[user_id] = ListedAdministrator(user_id, at)
        return sorted(current.values(), key=lambda a: a.user_id)


def csrf_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
