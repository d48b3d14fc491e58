"""Use cases of an authenticator's life: enrol, confirm, list, revoke, unlock, resynchronise."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from application.codes import ConfirmCodeEnrolment
from application.errors import ConflictError, InvalidRequestError
from application.identity import IdentityApplication, retry_on_conflict
from application.otp import CodeChecker, normalise_code, params_of, refuse_code
from application.ports import (
    Clock,
    IdGenerator,
    OtpProvisioner,
    OtpVerifier,
    SecretGenerator,
    SecretVault,
)
from domain.assurance import OUT_OF_BAND_METHODS
from domain.enrolment import Enrolment, EnrolmentError

#: RFC 6238 §5.1: keys as long as the HMAC output (also >= 112 bits, NIST N-20).
SECRET_BYTES = {"SHA1": 20, "SHA256": 32, "SHA512": 64}
#: RFC 4226 §7.4: the wider window used only to resynchronise from two consecutive codes.
RESYNC_WINDOW = 100


@dataclass(frozen=True, slots=True)
class NewEnrolment:
    enrolment_id: UUID
    method: str
    secret_b32: str
    otpauth_uri: str
    qr_svg: str


@dataclass(frozen=True, slots=True)
class StartOtpEnrolment:
    """Bind a new TOTP/HOTP authenticator, pending until the user proves they scanned it."""

    app: IdentityApplication
    vault: SecretVault
    secrets: SecretGenerator
    ids: IdGenerator
    clock: Clock
    provisioner: OtpProvisioner

    def __call__(
        self,
        *,
        org_id: UUID,
        user_id: str,
        method: str,
        label: str | None = None,
        algorithm: str = "SHA1",
        digits: int = 6,
        period: int = 30,
    ) -> NewEnrolment:
        policy = self.app.read_policy(org_id)
        if not policy.allows(method):
            raise InvalidRequestError(f"the organisation's policy does not allow {method!r}")
        organisation = self.app.get_organisation(org_id)
        secret = self.secrets.otp_secret(SECRET_BYTES.get(algorithm, 20))
        account_label = label or user_id

        def decide() -> Enrolment:
            account = self.app.account_for(org_id, user_id)
            try:
                enrolment = Enrolment.start(
                    enrolment_id=self.ids.new_id(),
                    org_id=org_id,
                    user_id=user_id,
                    method=method,
                    label=account_label,
                    algorithm=algorithm,
                    digits=digits,
                    period=period,
                    secret_ref=self.vault.seal(account.id, secret),
                    at=self.clock.now(),
                )
            except EnrolmentError as error:
                raise InvalidRequestError(str(error)) from None
            account.add_enrolment(enrolment.id)
            self.app.save(account, enrolment)
            return enrolment

        enrolment = retry_on_conflict(decide)
        uri = self.provisioner.uri(
            secret, params=params_of(enrolment), issuer=organisation.name, account=account_label
        )
        return NewEnrolment(
            enrolment_id=enrolment.id,
            method=method,
            secret_b32=base64.b32encode(secret).decode("ascii").rstrip("="),
            otpauth_uri=uri,
            qr_svg=self.provisioner.qr_svg(uri),
        )


@dataclass(frozen=True, slots=True)
class ConfirmOtpEnrolment:
    """Activate a pending enrolment with its first valid code (which is then used up)."""

    app: IdentityApplication
    checker: CodeChecker
    clock: Clock
    sent_codes: ConfirmCodeEnrolment | None = None  # SMS, voice and email enrolments

    def __call__(self, *, org_id: UUID, enrolment_id: UUID, code: str) -> None:
        def decide() -> None:
            enrolment = self.app.get_enrolment(enrolment_id, org_id=org_id)
            if enrolment.method == "webauthn":
                raise InvalidRequestError("a WebAuthn enrolment is confirmed with its credential")
            if enrolment.status != "pending":
                raise ConflictError(f"the enrolment is {enrolment.status}, not pending")
            policy = self.app.read_policy(org_id)
            account = self.app.account_for(org_id, enrolment.user_id)
            now = self.clock.now()
            self.checker.check_throttle(account, policy, at=now)
            if enrolment.method in OUT_OF_BAND_METHODS and self.sent_codes is not None:
                if not self.sent_codes(enrolment, code=code, policy=policy):
                    self.checker.record_failure([enrolment], policy, account=account, at=now)
                    self.app.save_changed(account, enrolment)
                    raise refuse_code()
                account.clear_failures(by="user", at=now)
                self.app.save_changed(account, enrolment)
                return
            found = self.checker.find_match(code, [enrolment], policy, account=account, at=now)
            if found is None:
                self.checker.record_failure([enrolment], policy, account=account, at=now)
                self.app.save_changed(account, enrolment)
                raise refuse_code()
            enrolment.confirm(found[1], at=now)
            account.clear_failures(by="user", at=now)
            self.app.save_changed(account, enrolment)

        retry_on_conflict(decide)


@dataclass(frozen=True, slots=True)
class ListEnrolments:
    """A user's authenticators, newest last; never a secret."""

    app: IdentityApplication

    def __call__(self, *, org_id: UUID, user_id: str) -> list[dict[str, Any]]:
        account = self.app.find_account(org_id, user_id)
        if account is None:
            return []
        return [e.summary() for e in self.app.enrolments_of(account)]


@dataclass(frozen=True, slots=True)
class RevokeEnrolment:
    """Remove an authenticator; it stops working at once."""

    app: IdentityApplication
    clock: Clock

    def __call__(self, *, org_id: UUID, enrolment_id: UUID, by: str) -> None:
        def decide() -> None:
            enrolment = self.app.get_enrolment(enrolment_id, org_id=org_id)
            account = self.app.account_for(org_id, enrolment.user_id)
            enrolment.revoke(by=by, at=self.clock.now())
            account.remove_enrolment(enrolment.id)
            self.app.save_changed(account, enrolment)

        retry_on_conflict(decide)


@dataclass(frozen=True, slots=True)
class UnlockEnrolment:
    """An administrator lifts a lock and clears the user's failure count."""

    app: IdentityApplication
    clock: Clock

    def __call__(self, *, org_id: UUID, enrolment_id: UUID, by: str) -> dict[str, Any]:
        def decide() -> dict[str, Any]:
            enrolment = self.app.get_enrolment(enrolment_id, org_id=org_id)
            account = self.app.account_for(org_id, enrolment.user_id)
            now = self.clock.now()
            enrolment.unlock(by=by, at=now)
            account.clear_failures(by=by, at=now)
            self.app.save_changed(account, enrolment)
            return enrolment.summary()

        return retry_on_conflict(decide)


@dataclass(frozen=True, slots=True)
class ResynchroniseHotp:
    """RFC 4226 §7.4: find two consecutive codes within a wide window and move past them."""

    app: IdentityApplication
    checker: CodeChecker
    otp: OtpVerifier
    vault: SecretVault
    clock: Clock

    def __call__(self, *, org_id: UUID, enrolment_id: UUID, code1: str, code2: str) -> None:
        def decide() -> None:
            enrolment = self.app.get_enrolment(enrolment_id, org_id=org_id)
            if enrolment.method != "hotp":
                raise InvalidRequestError("only an HOTP enrolment can be resynchronised")
            if not enrolment.is_usable:
                raise ConflictError("the enrolment is not active")
            policy = self.app.read_policy(org_id)
            account = self.app.account_for(org_id, enrolment.user_id)
            now = self.clock.now()
            self.checker.check_throttle(account, policy, at=now)
            counter = self._consecutive(enrolment, account.id, code1, code2)
            if counter is None:
                self.checker.record_failure([enrolment], policy, account=account, at=now)
                self.app.save_changed(account, enrolment)
                raise refuse_code()
            enrolment.resynchronise(counter, at=now)
            account.clear_failures(by="user", at=now)
            self.app.save_changed(account, enrolment)

        retry_on_conflict(decide)

    def _consecutive(self, enrolment: Enrolment, owner: UUID, code1: str, code2: str) -> int | None:
        first, second = normalise_code(code1), normalise_code(code2)
        if first is None or second is None:
            return None
        secret = self.vault.open(owner, enrolment.secret_ref)
        params, now = params_of(enrolment), self.clock.now()
        earliest = enrolment.next_moving_factor()
        while earliest <= enrolment.next_moving_factor() + RESYNC_WINDOW:
            c1 = self.otp.match(
                secret,
                first,
                params=params,
                at=now,
                earliest=earliest,
                window=RESYNC_WINDOW - (earliest - enrolment.next_moving_factor()),
            )
            if c1 is None:
                return None
            if (
                self.otp.match(secret, second, params=params, at=now, earliest=c1 + 1, window=0)
                is not None
            ):
                return c1 + 1
            earliest = c1 + 1
        return None
