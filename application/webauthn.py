"""WebAuthn use cases: register a security key, platform authenticator or passkey, and log in
with it, with or without a user id (see ADR 0015)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from application.authentications import Caller, Outcome, Verifier, open_session
from application.errors import CeremonyRejectedError, ConflictError, InvalidRequestError
from application.identity import IdentityApplication, retry_on_conflict
from application.ports import (
    AuthenticatorMetadata,
    Clock,
    IdGenerator,
    RegisteredCredential,
    RelyingParty,
    SecretGenerator,
    WebAuthnCeremonies,
    WebAuthnError,
)
from domain.account import Account
from domain.assurance import webauthn_amr
from domain.authentication import AuthenticationSession
from domain.credential import CredentialBinding
from domain.enrolment import (
    USER_VERIFICATION,
    Enrolment,
    EnrolmentError,
    EnrolmentNotPendingError,
    PossibleCloneError,
    RegistrationExpiredError,
    UserVerificationRequiredError,
)
from domain.policy import Policy

#: How long a registration challenge stays open (the browser's own timeout is the same).
REGISTRATION_TTL = timedelta(minutes=5)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise CeremonyRejectedError("the credential id is not base64url") from None


def stricter(requested: str, minimum: str) -> str:
    """The stronger of two WebAuthn user-verification (or resident-key) requirements."""
    return max(requested, minimum, key=USER_VERIFICATION.index)


def user_handle(org_id: UUID, user_id: str) -> bytes:
    """The WebAuthn user handle: the account's opaque id, never the user id itself (§14.6.1)."""
    return Account.create_id(org_id, user_id).bytes


@dataclass(frozen=True, slots=True)
class WebAuthnSettings:
    """The relying party (from configuration) and how long ceremonies may take."""

    rp: RelyingParty
    timeout: timedelta = REGISTRATION_TTL

    @property
    def timeout_ms(self) -> int:
        return int(self.timeout.total_seconds() * 1000)

    def for_policy(self, policy: Policy, *, name: str | None = None) -> RelyingParty:
        """The relying party for an organisation: its top origins, and its name where a
        ceremony shows one (creation options; requests and verification do not)."""
        return replace(
            self.rp,
            name=name or self.rp.name,
            top_origins=tuple(policy.settings["webauthn_top_origins"]),
        )


def _wants_attestation(policy: Policy) -> bool:
    """Ask for attestation only where the policy can use it (browsers may prompt for it)."""
    s = policy.settings
    return (
        s["webauthn_attestation"] == "attested"
        or bool(s["webauthn_aaguid_allow"])
        or s["login_aal"] == 3
        or 3 in s["step_up"].values()
    )


@dataclass(frozen=True, slots=True)
class NewWebAuthnEnrolment:
    enrolment_id: UUID
    options: dict[str, Any]  # PublicKeyCredentialCreationOptionsJSON


@dataclass(frozen=True, slots=True)
class StartWebAuthnEnrolment:
    """Open a registration ceremony: a pending enrolment holding a fresh challenge."""

    app: IdentityApplication
    ceremonies: WebAuthnCeremonies
    settings: WebAuthnSettings
    secrets: SecretGenerator
    ids: IdGenerator
    clock: Clock

    def __call__(
        self,
        *,
        org_id: UUID,
        user_id: str,
        label: str | None = None,
        attachment: str | None = None,
        resident_key: str = "preferred",
        user_verification: str = "preferred",
    ) -> NewWebAuthnEnrolment:
        policy = self.app.read_policy(org_id)
        if not policy.allows("webauthn"):
            raise InvalidRequestError("the organisation's policy does not allow 'webauthn'")
        organisation = self.app.get_organisation(org_id)
        uv = stricter(user_verification, policy.settings["webauthn_user_verification"])
        challenge = self.secrets.challenge()

        def decide() -> tuple[Enrolment, list[str]]:
            account = self.app.account_for(org_id, user_id)
            registered = [
                e.credential["credential_id"]
                for e in self.app.enrolments_of(account)
                if e.credential is not None and e.status != "revoked"
            ]
            try:
                enrolment = Enrolment.start_webauthn(
                    enrolment_id=self.ids.new_id(),
                    org_id=org_id,
                    user_id=user_id,
                    label=label or _default_label(attachment, resident_key),
                    challenge=b64url(challenge),
                    user_verification=uv,
                    resident_key=resident_key,
                    attachment=attachment,
                    ttl=self.settings.timeout,
                    at=self.clock.now(),
                )
            except EnrolmentError as error:
                raise InvalidRequestError(str(error)) from None
            account.add_enrolment(enrolment.id)
            self.app.save(account, enrolment)
            return enrolment, registered

        enrolment, registered = retry_on_conflict(decide)
        options = self.ceremonies.creation_options(
            rp=self.settings.for_policy(policy, name=organisation.name),
            user_handle=user_handle(org_id, user_id),
            user_name=user_id,
            display_name=user_id,  # names the user in the browser's account picker
            challenge=challenge,
            exclude=[unb64url(c) for c in registered],
            attachment=attachment,
            resident_key=resident_key,
            user_verification=uv,
            attestation="direct" if _wants_attestation(policy) else "none",
            timeout_ms=self.settings.timeout_ms,
        )
        return NewWebAuthnEnrolment(enrolment_id=enrolment.id, options=options)


def _default_label(attachment: str | None, resident_key: str) -> str:
    if attachment == "platform":
        return "This device"
    if resident_key == "required":
        return "Passkey"
    return "Security key"


@dataclass(frozen=True, slots=True)
class ConfirmWebAuthnEnrolment:
    """Finish a registration: verify the ceremony and attestation, apply the policy, bind."""

    app: IdentityApplication
    ceremonies: WebAuthnCeremonies
    metadata: AuthenticatorMetadata
    settings: WebAuthnSettings
    clock: Clock

    def __call__(self, *, org_id: UUID, enrolment_id: UUID, credential: dict[str, Any]) -> None:
        def decide() -> None:
            enrolment = self.app.get_enrolment(enrolment_id, org_id=org_id)
            if enrolment.method != "webauthn":
                raise InvalidRequestError("this enrolment is confirmed with a code")
            now = self.clock.now()
            try:
                registration = enrolment.open_registration(at=now)
            except EnrolmentNotPendingError:
                raise ConflictError(f"the enrolment is {enrolment.status}, not pending") from None
            except RegistrationExpiredError:
                raise ConflictError("the registration expired; start a new enrolment") from None
            policy = self.app.read_policy(org_id)
            try:
                registered = self.ceremonies.verify_registration(
                    credential,
                    rp=self.settings.for_policy(policy),
                    challenge=unb64url(registration["challenge"]),
                    require_user_verification=registration["user_verification"] == "required",
                    metadata=self.metadata,
                )
            except WebAuthnError as error:
                raise CeremonyRejectedError(str(error)) from None
            name = self._admit(registered, policy)
            credential_id = b64url(registered.credential_id)
            binding = self._bind(org_id, credential_id, enrolment, at=now)
            enrolment.register_credential(
                _credential_record(registered, registration, name), at=now
            )
            self.app.save(enrolment, binding)

        retry_on_conflict(decide)

    def _admit(self, registered: RegisteredCredential, policy: Policy) -> str | None:
        info = self.metadata.lookup(registered.aaguid)
        if info is not None and info.compromised:
            raise CeremonyRejectedError(
                f"the FIDO metadata reports this authenticator model as {info.status}"
            )
        reason = policy.admits_authenticator(aaguid=registered.aaguid, attested=registered.attested)
        if reason is not None:
            raise CeremonyRejectedError(reason)
        return info.description if info is not None else None

    def _bind(
        self, org_id: UUID, credential_id: str, enrolment: Enrolment, *, at: datetime
    ) -> CredentialBinding:
        binding = self.app.find_binding(org_id, credential_id)
        if binding is None:
            return CredentialBinding(
                org_id=org_id,
                credential_id=credential_id,
                enrolment_id=enrolment.id,
                user_id=enrolment.user_id,
                at=at,
            )
        earlier = self.app.get_enrolment(binding.enrolment_id, org_id=org_id)
        if earlier.status != "revoked":
            raise ConflictError("this credential is already registered")
        binding.rebind(enrolment_id=enrolment.id, user_id=enrolment.user_id, at=at)
        return binding


def _credential_record(
    registered: RegisteredCredential, registration: dict[str, Any], name: str | None
) -> dict[str, Any]:
    return {
        "credential_id": b64url(registered.credential_id),
        "public_key": b64url(registered.public_key),
        "algorithm": registered.algorithm,
        "sign_count": registered.sign_count,
        "aaguid": registered.aaguid,
        "fmt": registered.fmt,
        "attestation_type": registered.attestation_type,
        "attested": registered.attested,
        "backup_eligible": registered.backup_eligible,
        "backed_up": registered.backed_up,
        "transports": list(registered.transports),
        # Enrolled with user verification required: every later login must carry UV too.
        "uv_required": registration["user_verification"] == "required",
        "name": name,
    }


@dataclass(frozen=True, slots=True)
class WebAuthnLoginOptions:
    """Issue a login's WebAuthn challenge: the user's credentials, or none for a passkey."""

    app: IdentityApplication
    ceremonies: WebAuthnCeremonies
    settings: WebAuthnSettings
    secrets: SecretGenerator
    clock: Clock

    def __call__(self, *, caller: Caller, authentication_id: UUID) -> dict[str, Any]:
        challenge = self.secrets.challenge()

        def decide() -> tuple[list[Enrolment], str, Policy]:
            session = self.app.get_session(authentication_id, org_id=caller.org_id)
            now = self.clock.now()
            open_session(self.app, session, at=now)
            policy = self.app.read_policy(caller.org_id)
            if not policy.allows("webauthn"):
                raise InvalidRequestError("the organisation's policy does not allow 'webauthn'")
            keys: list[Enrolment] = []
            if not session.usernameless:
                account = self.app.account_for(caller.org_id, session.user_id)
                keys = [
                    e
                    for e in self.app.enrolments_of(account)
                    if e.method == "webauthn" and e.is_usable and e.credential is not None
                ]
                if not keys:
                    raise InvalidRequestError("method 'webauthn' is not available for this login")
            uv = (
                "required"
                if session.usernameless
                or session.required_aal == 3
                or any(e.credential and e.credential["uv_required"] for e in keys)
                else "preferred"
            )
            session.request_webauthn(
                challenge=b64url(challenge),
                credential_ids=[e.credential["credential_id"] for e in keys if e.credential],
                user_verification=uv,
                at=now,
            )
            self.app.save(session)
            return keys, uv, policy

        keys, uv, policy = retry_on_conflict(decide)
        return self.ceremonies.request_options(
            rp=self.settings.for_policy(policy),
            challenge=challenge,
            allow=[
                (unb64url(e.credential["credential_id"]), tuple(e.credential["transports"]))
                for e in keys
                if e.credential
            ],
            user_verification=uv,
            timeout_ms=self.settings.timeout_ms,
        )


@dataclass(frozen=True, slots=True)
class KeyVerifier:
    """Check a WebAuthn assertion against a login's open challenge.

    A refused assertion changes nothing (the challenge stays open) except that a sign counter
    that went backwards is recorded on the credential as a possible clone.
    """

    app: IdentityApplication
    ceremonies: WebAuthnCeremonies
    settings: WebAuthnSettings
    verifier: Verifier

    def verify(
        self,
        session: AuthenticationSession,
        *,
        caller: Caller,
        credential: dict[str, Any],
        at: datetime,
    ) -> Outcome:
        policy = self.app.read_policy(caller.org_id)
        if not policy.allows("webauthn"):
            raise InvalidRequestError("method 'webauthn' is not available for this login")
        open_session(self.app, session, at=at)
        if session.webauthn is None:
            raise ConflictError("request WebAuthn options for this login first")
        enrolment = self._enrolment_for(session, caller.org_id, credential)
        assert enrolment.credential is not None
        stored = enrolment.credential
        try:
            assertion = self.ceremonies.verify_authentication(
                credential,
                rp=self.settings.for_policy(policy),
                challenge=unb64url(session.webauthn["challenge"]),
                public_key=unb64url(stored["public_key"]),
                require_user_verification=(
                    session.webauthn["user_verification"] == "required" or stored["uv_required"]
                ),
            )
        except WebAuthnError as error:
            raise CeremonyRejectedError(str(error)) from None
        if (
            session.usernameless or assertion.user_handle is not None
        ) and assertion.user_handle != user_handle(caller.org_id, enrolment.user_id):
            raise CeremonyRejectedError("the user handle does not match the credential's user")
        try:
            enrolment.accept_assertion(
                sign_count=assertion.sign_count,
                user_verified=assertion.user_verified,
                backed_up=assertion.backed_up,
                reject_clones=policy.settings["webauthn_reject_clones"],
                at=at,
            )
        except PossibleCloneError:
            self.app.save_changed(enrolment)  # the suspicion itself is kept, as an event
            raise CeremonyRejectedError(
                "the signature counter did not increase: the authenticator may be cloned"
            ) from None
        except UserVerificationRequiredError:
            raise CeremonyRejectedError(
                "this credential needs user verification, and the assertion lacks the UV flag"
            ) from None
        hardware_bound = enrolment.hardware_bound
        satisfied = session.verify_key(
            enrolment_id=enrolment.id,
            user_id=enrolment.user_id,
            aal=enrolment.webauthn_factor(
                user_verified=assertion.user_verified,
                primary_factor_verified=session.primary_factor_verified,
            ),
            amr=webauthn_amr(hardware_bound=hardware_bound, user_verified=assertion.user_verified),
            hardware_bound=hardware_bound,
            at=at,
        )
        claims = (
            self.verifier.complete(session, policy, caller=caller, at=at) if satisfied else None
        )
        self.app.save_changed(session, enrolment)
        if claims is None:
            return Outcome(session)
        return Outcome(session, self.verifier.sign(claims, at=at))

    def _enrolment_for(
        self, session: AuthenticationSession, org_id: UUID, credential: dict[str, Any]
    ) -> Enrolment:
        """The active enrolment of the presented credential, offered to this login."""
        try:
            credential_id = b64url(self.ceremonies.credential_id(credential))
        except WebAuthnError as error:
            raise CeremonyRejectedError(str(error)) from None
        assert session.webauthn is not None
        offered = session.webauthn["credential_ids"]
        unknown = CeremonyRejectedError("the credential is not registered for this login")
        if not session.usernameless and credential_id not in offered:
            raise unknown
        binding = self.app.find_binding(org_id, credential_id)
        if binding is None:
            raise unknown
        enrolment = self.app.get_enrolment(binding.enrolment_id, org_id=org_id)
        if (
            not enrolment.is_usable  # removed or suspended since the options were issued
            or enrolment.credential is None
            or enrolment.credential["credential_id"] != credential_id
            or (not session.usernameless and enrolment.user_id != session.user_id)
        ):
            raise unknown
        return enrolment


@dataclass(frozen=True, slots=True)
class RecheckCredentials:
    """After a newer metadata BLOB: suspend every credential of a now-compromised model."""

    app: IdentityApplication
    metadata: AuthenticatorMetadata
    clock: Clock

    def __call__(self) -> list[UUID]:
        suspended: list[UUID] = []
        for binding in self.app.all_bindings():
            enrolment = self.app.get_enrolment(binding.enrolment_id, org_id=binding.org_id)
            if enrolment.status != "active" or enrolment.credential is None:
                continue
            info = self.metadata.lookup(enrolment.credential["aaguid"])
            if info is None or not info.compromised:
                continue
            enrolment.suspend(
                f"the FIDO metadata (BLOB {self.metadata.serial}) reports this "
                f"authenticator model as {info.status}",
                at=self.clock.now(),
            )
            self.app.save(enrolment)
            suspended.append(enrolment.id)
        return suspended


@dataclass(frozen=True, slots=True)
class VerifyWebAuthn:
    """`verify` with `"method": "webauthn"`: one assertion for a pending login."""

    app: IdentityApplication
    key_verifier: KeyVerifier
    clock: Clock

    def __call__(
        self, *, caller: Caller, authentication_id: UUID, credential: dict[str, Any]
    ) -> Outcome:
        def decide() -> Outcome:
            session = self.app.get_session(authentication_id, org_id=caller.org_id)
            return self.key_verifier.verify(
                session, caller=caller, credential=credential, at=self.clock.now()
            )

        return retry_on_conflict(decide)
