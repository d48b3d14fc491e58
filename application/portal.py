"""Self-service portal: a one-time link becomes a browser session in which a user lists, adds,
renames and removes their own authenticators (see ADR 0016)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from application.authentications import Caller, StartAuthentication
from application.enrolments import ConfirmOtpEnrolment, RevokeEnrolment, StartOtpEnrolment
from application.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
)
from application.identity import IdentityApplication, retry_on_conflict
from application.otp import params_of
from application.ports import (
    Clock,
    OtpProvisioner,
    RequestContext,
    SecretGenerator,
    SecretVault,
)
from application.webauthn import (
    ConfirmWebAuthnEnrolment,
    NewWebAuthnEnrolment,
    StartWebAuthnEnrolment,
    VerifyWebAuthn,
    WebAuthnLoginOptions,
)
from domain.assurance import OTP_METHODS
from domain.enrolment import Enrolment, EnrolmentError
from domain.portal import (
    LINK_TTL,
    PortalError,
    PortalLinkError,
    PortalSession,
    PortalSessionClosedError,
)

#: The `client_id` of the logins the portal starts to verify an existing factor.
PORTAL_CLIENT_ID = "portal"
MAX_NAME = 64

#: What each "add" button asks the authenticator for (WebAuthn enum values).
KEY_KINDS: dict[str, dict[str, str | None]] = {
    "security-key": {
        "attachment": "cross-platform",
        "resident_key": "discouraged",
        "user_verification": "preferred",
    },
    "passkey": {"attachment": None, "resident_key": "required", "user_verification": "required"},
    "platform": {
        "attachment": "platform",
        "resident_key": "preferred",
        "user_verification": "required",
    },
}
KIND_LABELS = {
    "app": "Authenticator app",
    "counter": "Authenticator app (counter-based)",
    "security-key": "Security key",
    "passkey": "Passkey",
    "platform": "This device's biometrics",
    "sms": "Text message (SMS) codes",
    "voice": "Voice call codes",
    "email": "Email codes",
}
DEFAULT_NAMES = {
    "app": "Authenticator app",
    "security-key": "Security key",
    "passkey": "Passkey",
    "platform": "This device",
}
STATUS_LABELS = {
    "pending": "Setup not finished",
    "active": "Active",
    "locked": "Locked",
    "suspended": "Suspended",
    "revoked": "Removed",
}


def hash_token(token: str) -> str:
    """Links and session tokens carry 256 random bits, so an unsalted SHA-256 is enough."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token_for(session_token: str) -> str:
    """The session's CSRF token, derived from the HttpOnly session token (never stored): a
    page can echo it, but only a holder of the session cookie can compute it."""
    return hash_token("tessera-portal-csrf:" + session_token)


class VerificationRequiredError(ForbiddenError):
    """Adding or removing an authenticator needs a factor verified in the last 5 minutes."""


def _refuse(error: PortalError) -> InvalidRequestError:
    return InvalidRequestError(str(error))


# --- the link and the browser session ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortalLink:
    url: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IssuePortalLink:
    """An application opens the portal for one of its users: a one-time link for 5 minutes.

    The application vouches for the user (it signed them in); only the link's hash is kept.
    """

    app: IdentityApplication
    secrets: SecretGenerator
    clock: Clock
    base_url: str

    def __call__(
        self, *, org_id: UUID, user_id: str, return_url: str | None, by: str
    ) -> PortalLink:
        token = self.secrets.token()
        now = self.clock.now()
        try:
            portal = PortalSession.issue(
                link_hash=hash_token(token),
                org_id=org_id,
                user_id=user_id,
                return_url=return_url,
                by=by,
                at=now,
            )
        except PortalError as error:
            raise _refuse(error) from None
        self.app.save(portal)
        return PortalLink(
            url=f"{self.base_url.rstrip('/')}/portal/start?token={token}",
            expires_at=now + LINK_TTL,
        )


@dataclass(frozen=True, slots=True)
class PortalVisit:
    """What a request knows of its live portal session."""

    portal_id: UUID
    org_id: UUID
    user_id: str
    csrf_token: str
    return_url: str | None
    redeemed_at: datetime
    expires_at: datetime
    verified_until: datetime | None
    setups: tuple[UUID, ...]  # enrolments begun in this session

    def verified(self, *, at: datetime) -> bool:
        return self.verified_until is not None and at < self.verified_until

    @property
    def caller(self) -> Caller:
        return Caller(org_id=self.org_id, client_id=PORTAL_CLIENT_ID)


def _visit(portal: PortalSession, session_token: str) -> PortalVisit:
    assert portal.redeemed_at is not None and portal.expires_at is not None
    return PortalVisit(
        portal_id=portal.id,
        org_id=portal.org_id,
        user_id=portal.user_id,
        csrf_token=csrf_token_for(session_token),
        return_url=portal.return_url,
        redeemed_at=portal.redeemed_at,
        expires_at=portal.expires_at,
        verified_until=portal.verified_until,
        setups=tuple(portal.setups),
    )


def _portal_of(app: IdentityApplication, session_token: str | None) -> PortalSession | None:
    """The portal session a cookie names (`<session id hex>.<random>`), unchecked."""
    if not session_token:
        return None
    id_part, _, secret = session_token.partition(".")
    if not secret:
        return None
    try:
        portal_id = UUID(hex=id_part)
    except ValueError:
        return None
    return app.find_portal_session(portal_id)


@dataclass(frozen=True, slots=True)
class RedeemPortalLink:
    """Use up a link: a new browser session (a second random token, also kept only hashed).

    A session the browser already had ends, so a link never joins an existing session.
    """

    app: IdentityApplication
    secrets: SecretGenerator
    clock: Clock

    def __call__(self, *, token: str, previous: str | None = None) -> tuple[str, PortalVisit]:
        link_hash = hash_token(token)
        portal_id = PortalSession.create_id(link_hash)

        def decide() -> tuple[str, PortalVisit]:
            now = self.clock.now()
            portal = self.app.find_portal_session(portal_id)
            if portal is None:
                raise PortalLinkError("the portal link is not valid")
            session_token = f"{portal.id.hex}.{self.secrets.token()}"
            portal.redeem(link_hash, session_hash=hash_token(session_token), at=now)
            self.app.save(portal)
            return session_token, _visit(portal, session_token)

        session_token, visit = retry_on_conflict(decide)
        if previous:
            EndPortalSession(self.app, self.clock)(session_token=previous, reason="replaced")
        return session_token, visit


@dataclass(frozen=True, slots=True)
class ResumePortalSession:
    """The live session a cookie names, with its activity noted; None once it has ended."""

    app: IdentityApplication
    clock: Clock

    def __call__(self, *, session_token: str | None) -> PortalVisit | None:
        def decide() -> PortalVisit | None:
            portal = _portal_of(self.app, session_token)
            if portal is None or session_token is None:
                return None
            try:
                portal.resume(hash_token(session_token), at=self.clock.now())
            except PortalSessionClosedError:
                self.app.save_changed(portal)  # an idle or expired session records its end
                return None
            self.app.save_changed(portal)
            return _visit(portal, session_token)

        return retry_on_conflict(decide)


@dataclass(frozen=True, slots=True)
class EndPortalSession:
    """Sign out of the portal (or end a session a newer link replaces)."""

    app: IdentityApplication
    clock: Clock

    def __call__(self, *, session_token: str | None, reason: str = "signed_out") -> None:
        def decide() -> None:
            portal = _portal_of(self.app, session_token)
            if (
                portal is None
                or session_token is None
                or portal.session_hash != hash_token(session_token)
            ):
                return
            portal.end(reason, at=self.clock.now())
            self.app.save_changed(portal)

        retry_on_conflict(decide)


# --- what the portal shows ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthenticatorView:
    enrolment_id: UUID
    name: str
    method: str
    kind: str  # "app" | "counter" | "security-key" | "passkey" | "platform" | a method name
    kind_label: str
    status: str  # "pending" | "active" | "locked" | "suspended"
    status_label: str
    created_at: datetime
    last_used_at: datetime | None
    notice: str | None  # why it is suspended or locked
    model: str | None  # the authenticator model's name from the FIDO metadata
    synced: bool  # a passkey that is backed up (not bound to one device)
    usable: bool
    started_here: bool  # a pending app setup begun in this portal session


@dataclass(frozen=True, slots=True)
class PortalOverview:
    user_id: str
    authenticators: list[AuthenticatorView]
    verification_needed: bool  # an active authenticator exists, and none was verified lately
    verified: bool
    code_authenticators: list[AuthenticatorView]  # usable for a code verification
    key_usable: bool  # a usable security key or passkey exists
    allowed: frozenset[str]  # methods the organisation allows


def _kind(enrolment: Enrolment) -> str:
    if enrolment.method == "totp":
        return "app"
    if enrolment.method == "hotp":
        return "counter"
    if enrolment.method != "webauthn":
        return enrolment.method
    # what the registration asked for (kept on the credential), else what the key says
    credential = enrolment.credential or {}
    requested = credential or enrolment.registration or {}
    if requested.get("resident_key") == "required":
        return "passkey"
    if requested.get("attachment") == "platform":
        return "platform"
    if requested.get("attachment") == "cross-platform":
        return "security-key"
    if credential.get("backup_eligible"):
        return "passkey"
    if "internal" in credential.get("transports", ()):
        return "platform"
    return "security-key"


def _notice(enrolment: Enrolment) -> str | None:
    if enrolment.status == "suspended":
        return enrolment.suspended_reason or "suspended by the service"
    if enrolment.display_status == "locked":
        return "locked after too many wrong codes; ask your administrator to unlock it"
    return None


def _view(app: IdentityApplication, enrolment: Enrolment, visit: PortalVisit) -> AuthenticatorView:
    kind = _kind(enrolment)
    status = enrolment.display_status
    credential = enrolment.credential or {}
    return AuthenticatorView(
        enrolment_id=enrolment.id,
        name=enrolment.label,
        method=enrolment.method,
        kind=kind,
        kind_label=KIND_LABELS.get(kind, kind),
        status=status,
        status_label=STATUS_LABELS.get(status, status),
        created_at=enrolment.created_at,
        last_used_at=enrolment.last_used_at,
        notice=_notice(enrolment),
        model=credential.get("name"),
        synced=bool(credential.get("backed_up")),
        usable=enrolment.is_usable,
        started_here=status == "pending"
        and enrolment.method == "totp"
        and enrolment.id in visit.setups,
    )


def _enrolments(app: IdentityApplication, visit: PortalVisit) -> list[Enrolment]:
    account = app.find_account(visit.org_id, visit.user_id)
    if account is None:
        return []
    return [e for e in app.enrolments_of(account) if e.status != "revoked"]


def _needs_verification(app: IdentityApplication, visit: PortalVisit, *, at: datetime) -> bool:
    if visit.verified(at=at):
        return False
    # A locked authenticator counts: locking someone's app must not open the door to adding one.
    return any(e.status == "active" for e in _enrolments(app, visit))


def _require_verification(app: IdentityApplication, visit: PortalVisit, *, at: datetime) -> None:
    if _needs_verification(app, visit, at=at):
        raise VerificationRequiredError(
            "verify an authenticator you already have before adding or removing one"
        )


def _own_enrolment(app: IdentityApplication, visit: PortalVisit, enrolment_id: UUID) -> Enrolment:
    """One of the visitor's own authenticators; any other is "not found"."""
    enrolment = app.get_enrolment(enrolment_id, org_id=visit.org_id)
    if enrolment.user_id != visit.user_id or enrolment.status == "revoked":
        raise NotFoundError("authenticator")
    return enrolment


@dataclass(frozen=True, slots=True)
class ShowPortal:
    """The visitor's authenticators, oldest first, and what verifying would take."""

    app: IdentityApplication
    clock: Clock

    def __call__(self, *, visit: PortalVisit) -> PortalOverview:
        now = self.clock.now()
        policy = self.app.read_policy(visit.org_id)
        views = [_view(self.app, e, visit) for e in _enrolments(self.app, visit)]
        return PortalOverview(
            user_id=visit.user_id,
            authenticators=views,
            verification_needed=any(v.status in ("active", "locked") for v in views)
            and not visit.verified(at=now),
            verified=visit.verified(at=now),
            code_authenticators=[
                v for v in views if v.usable and v.method in OTP_METHODS and policy.allows(v.method)
            ],
            key_usable=policy.allows("webauthn")
            and any(v.usable and v.method == "webauthn" for v in views),
            allowed=frozenset(policy.settings["allowed_methods"]),
        )


@dataclass(frozen=True, slots=True)
class ShowAuthenticator:
    app: IdentityApplication

    def __call__(self, *, visit: PortalVisit, enrolment_id: UUID) -> AuthenticatorView:
        return _view(self.app, _own_enrolment(self.app, visit, enrolment_id), visit)


# --- verifying an existing factor (the login use cases, for the portal's user) -------------


def _change_portal(
    app: IdentityApplication, visit: PortalVisit, change: Callable[[PortalSession], None]
) -> None:
    """Record one change on the visit's portal session (it must still be live)."""

    def decide() -> None:
        portal = app.find_portal_session(visit.portal_id)
        if portal is None:
            raise NotFoundError("portal session")
        try:
            change(portal)
        except PortalSessionClosedError:
            raise ConflictError("the portal session has ended") from None
        app.save(portal)

    retry_on_conflict(decide)


def _record_verification(
    app: IdentityApplication,
    clock: Clock,
    visit: PortalVisit,
    *,
    method: str,
    enrolment_id: UUID,
    authentication_id: UUID,
) -> None:
    _change_portal(
        app,
        visit,
        lambda portal: portal.record_verification(
            method=method,
            enrolment_id=enrolment_id,
            authentication_id=authentication_id,
            at=clock.now(),
        ),
    )


def _record_setup(
    app: IdentityApplication, clock: Clock, visit: PortalVisit, enrolment_id: UUID, method: str
) -> None:
    _change_portal(
        app,
        visit,
        lambda portal: portal.record_setup(
            enrolment_id=enrolment_id, method=method, at=clock.now()
        ),
    )


@dataclass(frozen=True, slots=True)
class VerifyWithCode:
    """Prove possession of an authenticator app: a login with its code, for this user."""

    app: IdentityApplication
    start_authentication: StartAuthentication
    clock: Clock

    def __call__(
        self, *, visit: PortalVisit, enrolment_id: UUID, code: str, context: RequestContext
    ) -> None:
        enrolment = _own_enrolment(self.app, visit, enrolment_id)
        if enrolment.method not in OTP_METHODS:
            raise InvalidRequestError("this authenticator does not show codes")
        outcome = self.start_authentication(
            caller=visit.caller,
            user_id=visit.user_id,
            context=context,
            method=enrolment.method,
            code=code,
            enrolment_id=enrolment.id,
        )
        if outcome.session.status != "satisfied":
            raise InvalidRequestError("the organisation's policy refused this verification")
        _record_verification(
            self.app,
            self.clock,
            visit,
            method=enrolment.method,
            enrolment_id=enrolment.id,
            authentication_id=outcome.session.id,
        )


@dataclass(frozen=True, slots=True)
class KeyChallenge:
    authentication_id: UUID
    options: dict[str, Any]  # PublicKeyCredentialRequestOptionsJSON


@dataclass(frozen=True, slots=True)
class StartKeyVerification:
    """Open a login for the portal's user and its WebAuthn challenge."""

    app: IdentityApplication
    start_authentication: StartAuthentication
    login_options: WebAuthnLoginOptions

    def __call__(self, *, visit: PortalVisit, context: RequestContext) -> KeyChallenge:
        if not any(e.method == "webauthn" and e.is_usable for e in _enrolments(self.app, visit)):
            raise InvalidRequestError("you have no security key or passkey to verify with")
        outcome = self.start_authentication(
            caller=visit.caller, user_id=visit.user_id, context=context
        )
        session = outcome.session
        if session.status != "pending":
            raise InvalidRequestError("the organisation's policy refused this verification")
        options = self.login_options(caller=visit.caller, authentication_id=session.id)
        return KeyChallenge(authentication_id=session.id, options=options)


@dataclass(frozen=True, slots=True)
class FinishKeyVerification:
    """Check the assertion against the portal's login; a satisfied login verifies the user."""

    app: IdentityApplication
    verify_webauthn: VerifyWebAuthn
    clock: Clock

    def __call__(
        self, *, visit: PortalVisit, authentication_id: UUID, credential: dict[str, Any]
    ) -> None:
        session = self.app.get_session(authentication_id, org_id=visit.org_id)
        if session.user_id != visit.user_id:  # never another user's (or a usernameless) login
            raise NotFoundError("authentication")
        outcome = self.verify_webauthn(
            caller=visit.caller, authentication_id=authentication_id, credential=credential
        )
        verified = outcome.session
        if verified.status != "satisfied" or not verified.factors:
            raise InvalidRequestError("the organisation's policy refused this verification")
        _record_verification(
            self.app,
            self.clock,
            visit,
            method="webauthn",
            enrolment_id=UUID(str(verified.factors[-1]["enrolment_id"])),
            authentication_id=authentication_id,
        )


# --- adding, renaming and removing --------------------------------------------------------


def _name(name: str | None, default: str) -> str:
    cleaned = " ".join((name or "").split())
    if len(cleaned) > MAX_NAME:
        raise InvalidRequestError(f"a name has at most {MAX_NAME} characters")
    return cleaned or default


@dataclass(frozen=True, slots=True)
class AppSetup:
    enrolment_id: UUID
    name: str
    qr_svg: str
    secret_b32: str


@dataclass(frozen=True, slots=True)
class StartAppSetup:
    """Begin adding an authenticator app (TOTP); needs a recent verification if one exists."""

    app: IdentityApplication
    start_enrolment: StartOtpEnrolment
    clock: Clock

    def __call__(self, *, visit: PortalVisit, name: str | None = None) -> UUID:
        _require_verification(self.app, visit, at=self.clock.now())
        started = self.start_enrolment(
            org_id=visit.org_id,
            user_id=visit.user_id,
            method="totp",
            label=_name(name, DEFAULT_NAMES["app"]),
        )
        _record_setup(self.app, self.clock, visit, started.enrolment_id, "totp")
        return started.enrolment_id


def _setup_in_this_session(
    app: IdentityApplication, visit: PortalVisit, enrolment_id: UUID, method: str
) -> Enrolment:
    """A pending enrolment this portal session began (never one an application started)."""
    enrolment = _own_enrolment(app, visit, enrolment_id)
    if enrolment.method != method or enrolment.id not in visit.setups:
        raise NotFoundError("authenticator")
    if enrolment.status != "pending":
        raise ConflictError("this authenticator is already set up")
    return enrolment


@dataclass(frozen=True, slots=True)
class ShowAppSetup:
    """The QR code of an app setup begun in this session, until it is confirmed."""

    app: IdentityApplication
    vault: SecretVault
    provisioner: OtpProvisioner

    def __call__(self, *, visit: PortalVisit, enrolment_id: UUID) -> AppSetup:
        enrolment = _setup_in_this_session(self.app, visit, enrolment_id, "totp")
        account = self.app.account_for(visit.org_id, visit.user_id)
        secret = self.vault.open(account.id, enrolment.secret_ref)
        organisation = self.app.get_organisation(visit.org_id)
        uri = self.provisioner.uri(
            secret, params=params_of(enrolment), issuer=organisation.name, account=visit.user_id
        )
        return AppSetup(
            enrolment_id=enrolment.id,
            name=enrolment.label,
            qr_svg=self.provisioner.qr_svg(uri),
            secret_b32=base64.b32encode(secret).decode("ascii").rstrip("="),
        )


@dataclass(frozen=True, slots=True)
class ConfirmAppSetup:
    app: IdentityApplication
    confirm_enrolment: ConfirmOtpEnrolment

    def __call__(self, *, visit: PortalVisit, enrolment_id: UUID, code: str) -> None:
        _setup_in_this_session(self.app, visit, enrolment_id, "totp")
        self.confirm_enrolment(org_id=visit.org_id, enrolment_id=enrolment_id, code=code)


@dataclass(frozen=True, slots=True)
class StartKeySetup:
    """Begin adding a security key, a passkey or this device's platform authenticator."""

    app: IdentityApplication
    start_webauthn_enrolment: StartWebAuthnEnrolment
    clock: Clock

    def __call__(
        self, *, visit: PortalVisit, kind: str, name: str | None = None
    ) -> NewWebAuthnEnrolment:
        options = KEY_KINDS.get(kind)
        if options is None:
            raise InvalidRequestError(f"kind must be one of {sorted(KEY_KINDS)}")
        _require_verification(self.app, visit, at=self.clock.now())
        started = self.start_webauthn_enrolment(
            org_id=visit.org_id,
            user_id=visit.user_id,
            label=_name(name, DEFAULT_NAMES[kind]),
            attachment=options["attachment"],
            resident_key=options["resident_key"] or "preferred",
            user_verification=options["user_verification"] or "preferred",
        )
        _record_setup(self.app, self.clock, visit, started.enrolment_id, "webauthn")
        return started


@dataclass(frozen=True, slots=True)
class ConfirmKeySetup:
    app: IdentityApplication
    confirm_webauthn_enrolment: ConfirmWebAuthnEnrolment

    def __call__(
        self, *, visit: PortalVisit, enrolment_id: UUID, credential: dict[str, Any]
    ) -> None:
        _setup_in_this_session(self.app, visit, enrolment_id, "webauthn")
        self.confirm_webauthn_enrolment(
            org_id=visit.org_id, enrolment_id=enrolment_id, credential=credential
        )


@dataclass(frozen=True, slots=True)
class RenameAuthenticator:
    """Give one of the user's authenticators a name they recognise (no verification needed)."""

    app: IdentityApplication
    clock: Clock

    def __call__(self, *, visit: PortalVisit, enrolment_id: UUID, name: str) -> None:
        def decide() -> None:
            enrolment = _own_enrolment(self.app, visit, enrolment_id)
            cleaned = _name(name, "")
            if not cleaned:
                raise InvalidRequestError("a name cannot be empty")
            try:
                enrolment.rename(cleaned, by="user", at=self.clock.now())
            except EnrolmentError as error:
                raise InvalidRequestError(str(error)) from None
            self.app.save_changed(enrolment)

        retry_on_conflict(decide)


@dataclass(frozen=True, slots=True)
class RemoveAuthenticator:
    """Remove one of the user's authenticators; an unfinished setup needs no verification."""

    app: IdentityApplication
    revoke_enrolment: RevokeEnrolment
    clock: Clock

    def __call__(self, *, visit: PortalVisit, enrolment_id: UUID) -> None:
        enrolment = _own_enrolment(self.app, visit, enrolment_id)
        if enrolment.status != "pending":
            _require_verification(self.app, visit, at=self.clock.now())
        self.revoke_enrolment(org_id=visit.org_id, enrolment_id=enrolment_id, by="user")
