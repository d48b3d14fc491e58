"""SMS, voice and email codes: enrol a destination, send codes, verify them, record delivery
(see ADR 0017)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from application.authentications import (
    SENT_CODE_DIGITS,
    Caller,
    code_binding,
    open_session,
    sent_code_matches,
    usable_methods,
)
from application.errors import (
    ConflictError,
    InvalidRequestError,
    ThrottledError,
    UnauthorizedError,
)
from application.identity import IdentityApplication, retry_on_conflict
from application.ports import (
    Clock,
    CodeHasher,
    CodeSender,
    DeliveryCallbacks,
    DeliveryReport,
    IdGenerator,
    InvalidCallbackError,
    InvalidPhoneNumberError,
    MessageLocales,
    OutboundCode,
    PhoneNumbers,
    SecretGenerator,
    SecretVault,
    SendCounters,
)
from domain.account import Account
from domain.assurance import OUT_OF_BAND_METHODS
from domain.authentication import AuthenticationSession
from domain.codes import CodeError, ResendTooSoonError, check_resend, issue_code
from domain.delivery import Delivery, ProviderMessage
from domain.enrolment import Enrolment, EnrolmentError
from domain.policy import Policy

UNKNOWN_IP = "-"
HOUR = 3600


def email_link(base: str | None, purpose: str, subject_id: UUID, code: str) -> str | None:
    """The application's page that takes the code back from an email: `base` with the login's
    (or enrolment's) id and the code as query parameters."""
    if base is None:
        return None
    name = "authentication_id" if purpose == "login" else "enrolment_id"
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}{urlencode({name: str(subject_id), 'code': code})}"


MASK = "•"


def mask_email(address: str) -> str:
    """`alice@example.com` -> `a•••@e•••.com`: the first letter of the mailbox and of the domain,
    and the top-level domain. The mask has a fixed width, so it does not reveal lengths."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain:
        return MASK * 3
    labels = [label for label in domain.split(".") if label]
    if not labels:
        return f"{local[0]}{MASK * 3}@{MASK * 3}"
    tld = f".{labels[-1]}" if len(labels) > 1 else ""
    return f"{local[0]}{MASK * 3}@{labels[0][0]}{MASK * 3}{tld}"


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a code goes, as parsed and judged before anything is stored."""

    address: str  # E.164 number or email address
    masked: str
    region: str | None
    number_type: str | None
    carrier: str | None


@dataclass(frozen=True, slots=True)
class SentCode:
    """What the API answers after a send: never the code, never the full destination."""

    subject_id: UUID  # the authentication or the enrolment
    enrolment_id: UUID
    method: str
    destination: str  # masked
    delivery_id: UUID
    delivery_status: str  # "sent" | "failed"
    provider: str | None
    expires_at: datetime
    resend_after: datetime


@dataclass(frozen=True, slots=True)
class Issued:
    """A code recorded (not yet saved) for an enrolment's destination, and its delivery."""

    enrolment: Enrolment
    record: dict[str, Any]
    delivery: Delivery
    message: OutboundCode


@dataclass(frozen=True, slots=True)
class Messaging:
    """The machinery every send shares: codes, hashes, toll-fraud caps, providers, records."""

    app: IdentityApplication
    phones: PhoneNumbers
    sender: CodeSender
    locales: MessageLocales
    counters: SendCounters
    hasher: CodeHasher
    vault: SecretVault
    secrets: SecretGenerator
    ids: IdGenerator
    clock: Clock

    def new_code(self) -> str:
        """Six digits from the CSPRNG (64 random bits reduced: the bias is below 1e-13)."""
        value = int.from_bytes(self.secrets.otp_secret(8), "big") % 10**SENT_CODE_DIGITS
        return f"{value:0{SENT_CODE_DIGITS}d}"

    def destination(self, method: str, raw: str, policy: Policy) -> Destination:
        if method == "email":
            address = raw.strip()
            local, at, domain = address.partition("@")
            if not at or not local or "." not in domain or len(address) > 254 or " " in address:
                raise InvalidRequestError("the email address is not valid")
            return Destination(address, mask_email(address), None, None, None)
        try:
            number = self.phones.parse(raw)
        except InvalidPhoneNumberError as error:
            raise InvalidRequestError(str(error)) from None
        refusal = policy.admits_destination(region=number.region, number_type=number.number_type)
        if refusal is not None:
            raise InvalidRequestError(refusal)
        if method == "sms" and number.number_type == "fixed_line":
            raise InvalidRequestError("a fixed-line number cannot receive SMS: enrol it for voice")
        return Destination(
            number.e164, number.masked, number.region, number.number_type, number.carrier
        )

    def caps_exceeded(
        self, org_id: UUID, policy: Policy, destination: Destination, *, ip: str, at: datetime
    ) -> tuple[str, str] | None:
        """Count this send against the toll-fraud caps; the first cap it exceeds, or None."""
        caps = policy.settings["send_caps"]
        number = self.hasher.digest(destination.address, binding="send-cap")
        region = destination.region or "-"
        keys = {
            "number_cap": (f"number:{number}", caps["number"]),
            "organisation_cap": (f"org:{org_id}", caps["organisation"]),
            "country_cap": (f"country:{org_id}:{region}", caps["country"]),
        }
        if ip != UNKNOWN_IP:  # an application that sends no IP is capped per number and org
            keys["ip_cap"] = (f"ip:{org_id}:{ip}", caps["ip"])
        usual = policy.settings["usual_countries"]
        if usual and destination.region not in usual:
            keys["unusual_countries"] = (f"unusual:{org_id}", policy.settings["unusual_burst"])
        counts = self.counters.hit([k for k, _ in keys.values()], window_seconds=HOUR, at=at)
        for reason, (key, cap) in keys.items():
            if counts[key] > cap:
                return reason, f"{counts[key]} sends this hour, cap {cap}"
        return None

    def locale(
        self, enrolment: Enrolment, destination_region: str | None, accept_language: str | None
    ) -> str:
        stored = enrolment.destination["locale"] if enrolment.destination else None
        return self.locales.choose(
            stored=stored, accept_language=accept_language, region=destination_region
        )

    def deliver(self, delivery: Delivery, message: OutboundCode) -> DeliveryReport:
        """Hand the code to the providers and record every attempt (after the code's own
        record is committed, so a crash can lose a message but never accept an unknown code)."""
        report = self.sender.send(message)
        refs: list[ProviderMessage] = []
        at = self.clock.now()
        for attempt in report.attempts:
            delivery.record_attempt(
                provider=attempt.provider,
                accepted=attempt.accepted,
                provider_message_id=attempt.provider_message_id,
                error=attempt.error,
                elapsed_ms=attempt.elapsed_ms,
                at=at,
            )
            if attempt.accepted and attempt.provider_message_id:
                refs.append(
                    ProviderMessage(  # type: ignore[call-arg]  # eventsourcing accepts id=
                        id=ProviderMessage.create_id(attempt.provider, attempt.provider_message_id),
                        org_id=delivery.org_id,
                        delivery_id=delivery.id,
                    )
                )
        self.app.save(delivery, *refs)
        return report

    def refuse(self, delivery: Delivery, reason: str, detail: str) -> ThrottledError:
        """Record a send the toll-fraud caps refused; the error to raise."""
        delivery.refuse(reason, detail, at=self.clock.now())
        self.app.save(delivery)
        return ThrottledError(
            HOUR,
            detail="Too many codes were sent recently: try again later, or use another method.",
        )

    def issue(
        self,
        *,
        org_id: UUID,
        enrolment: Enrolment,
        subject_id: UUID,
        purpose: str,
        policy: Policy,
        ip: str,
        accept_language: str | None,
        link_url: str | None = None,
    ) -> tuple[str, dict[str, Any], Delivery, OutboundCode]:
        """A new code for `enrolment`'s destination, its record, and its delivery; raises
        ThrottledError (recorded as a refused delivery) when a toll-fraud cap is exceeded."""
        now = self.clock.now()
        address = self.vault.open(
            Account.create_id(org_id, enrolment.user_id), enrolment.secret_ref
        ).decode()
        assert enrolment.destination is not None
        region = enrolment.destination["region"]
        destination = Destination(
            address,
            enrolment.destination["masked"],
            region,
            enrolment.destination["number_type"],
            enrolment.destination["carrier"],
        )
        locale = self.locale(enrolment, region, accept_language)
        delivery = Delivery(  # type: ignore[call-arg]  # eventsourcing accepts id=
            id=self.ids.new_id(),
            org_id=org_id,
            user_id=enrolment.user_id,
            channel=enrolment.method,
            purpose=purpose,
            subject_id=subject_id,
            region=region,
            masked_to=destination.masked,
            locale=locale,
            at=now,
        )
        exceeded = self.caps_exceeded(org_id, policy, destination, ip=ip, at=now)
        if exceeded is not None:
            raise self.refuse(delivery, *exceeded)
        code = self.new_code()
        record = issue_code(
            channel=enrolment.method,
            enrolment_id=enrolment.id,
            code_hash=self.hasher.digest(code, binding=code_binding(subject_id, enrolment.method)),
            delivery_id=delivery.id,
            ttl=timedelta(seconds=policy.settings["code_ttl_seconds"]),
            max_tries=policy.settings["code_max_tries"],
            cool_down=timedelta(seconds=policy.settings["code_resend_seconds"]),
            at=now,
        )
        organisation = self.app.get_organisation(org_id)
        message = OutboundCode(
            message_id=str(delivery.id),
            channel=enrolment.method,
            to=address,
            code=code,
            locale=locale,
            issuer=organisation.name,
            ttl_minutes=max(1, policy.settings["code_ttl_seconds"] // 60),
            region=region,
            carrier=destination.carrier,
            link=email_link(link_url, purpose, subject_id, code)
            if enrolment.method == "email"
            else None,
        )
        return code, record, delivery, message

    def for_enrolment(
        self,
        enrolment: Enrolment,
        *,
        org_id: UUID,
        policy: Policy,
        ip: str,
        accept_language: str | None,
        link_url: str | None = None,
    ) -> Issued:
        """A new code for a pending enrolment, recorded on it (the caller saves)."""
        _, record, delivery, message = self.issue(
            org_id=org_id,
            enrolment=enrolment,
            subject_id=enrolment.id,
            purpose="enrolment",
            policy=policy,
            ip=ip,
            accept_language=accept_language,
            link_url=link_url,
        )
        enrolment.issue_code(record, at=self.clock.now())
        return Issued(enrolment, record, delivery, message)

    def send(self, decide: Callable[[], Issued], *, subject_id: UUID | None = None) -> SentCode:
        """Record the code (retrying on a concurrent change), then hand it to the providers."""
        issued = retry_on_conflict(decide)
        report = self.deliver(issued.delivery, issued.message)
        accepted = report.accepted_by
        enrolment = issued.enrolment
        assert enrolment.destination is not None
        return SentCode(
            subject_id=subject_id or enrolment.id,
            enrolment_id=enrolment.id,
            method=enrolment.method,
            destination=enrolment.destination["masked"],
            delivery_id=issued.delivery.id,
            delivery_status="sent" if accepted else "failed",
            provider=accepted.provider if accepted else None,
            expires_at=issued.record["expires_at"],
            resend_after=issued.record["resend_after"],
        )


def _resend_refused(error: ResendTooSoonError) -> ThrottledError:
    return ThrottledError(
        error.retry_after,
        detail=f"A code was just sent: ask for another in {error.retry_after} seconds.",
    )


@dataclass(frozen=True, slots=True)
class StartCodeEnrolment:
    """Enrol a phone number (SMS, voice) or an email address and send its first code."""

    messaging: Messaging

    def __call__(
        self,
        *,
        org_id: UUID,
        user_id: str,
        method: str,
        address: str,
        label: str | None,
        locale: str | None,
        ip: str,
        accept_language: str | None,
        link_url: str | None = None,
    ) -> SentCode:
        m = self.messaging
        policy = m.app.read_policy(org_id)
        if method not in OUT_OF_BAND_METHODS or not policy.allows(method):
            raise InvalidRequestError(f"the organisation's policy does not allow {method!r}")
        destination = m.destination(method, address, policy)

        def decide() -> Issued:
            account = m.app.account_for(org_id, user_id)
            try:
                enrolment = Enrolment.start_out_of_band(
                    enrolment_id=m.ids.new_id(),
                    org_id=org_id,
                    user_id=user_id,
                    method=method,
                    label=label or destination.masked,
                    destination_ref=m.vault.seal(account.id, destination.address.encode()),
                    masked=destination.masked,
                    region=destination.region,
                    number_type=destination.number_type,
                    carrier=destination.carrier,
                    locale=locale,
                    at=m.clock.now(),
                )
            except EnrolmentError as error:
                raise InvalidRequestError(str(error)) from None
            issued = m.for_enrolment(
                enrolment,
                org_id=org_id,
                policy=policy,
                ip=ip,
                accept_language=accept_language,
                link_url=link_url,
            )
            account.add_enrolment(enrolment.id)
            m.app.save(account, enrolment, issued.delivery)
            return issued

        return m.send(decide)


@dataclass(frozen=True, slots=True)
class ResendEnrolmentCode:
    """A new code for a pending SMS, voice or email enrolment (the old one stops working)."""

    messaging: Messaging

    def __call__(
        self, *, org_id: UUID, enrolment_id: UUID, ip: str, accept_language: str | None
    ) -> SentCode:
        m = self.messaging

        def decide() -> Issued:
            enrolment = m.app.get_enrolment(enrolment_id, org_id=org_id)
            if enrolment.method not in OUT_OF_BAND_METHODS:
                raise InvalidRequestError("only SMS, voice and email enrolments get codes sent")
            if enrolment.status != "pending":
                raise ConflictError(f"the enrolment is {enrolment.status}, not pending")
            policy = m.app.read_policy(org_id)
            try:  # checked before any cap is counted: a refused resend costs nothing
                check_resend(enrolment.pending_code, at=m.clock.now())
            except ResendTooSoonError as error:
                raise _resend_refused(error) from None
            issued = m.for_enrolment(
                enrolment, org_id=org_id, policy=policy, ip=ip, accept_language=accept_language
            )
            m.app.save(enrolment, issued.delivery)
            return issued

        return m.send(decide)


@dataclass(frozen=True, slots=True)
class SendLoginCode:
    """`POST /v1/authentications/{id}/challenges`: send a code over SMS, voice or email."""

    messaging: Messaging

    def __call__(
        self,
        *,
        caller: Caller,
        authentication_id: UUID,
        method: str,
        enrolment_id: UUID | None,
        accept_language: str | None,
        link_url: str | None = None,
    ) -> SentCode:
        """`link_url`: for email, the application's page the message links to with the
        login's id and the code, so a click can stand in for typing it."""
        m = self.messaging

        def decide() -> Issued:
            session = m.app.get_session(authentication_id, org_id=caller.org_id)
            now = m.clock.now()
            open_session(m.app, session, at=now)
            if session.usernameless:
                raise InvalidRequestError("a login without a user_id can only use a passkey")
            if method not in session.methods:
                raise InvalidRequestError(f"method {method!r} is not available for this login")
            policy = m.app.read_policy(caller.org_id)
            enrolment = self._enrolment(session, method, enrolment_id, policy)
            try:
                check_resend(session.code, at=now)
            except ResendTooSoonError as error:
                raise _resend_refused(error) from None
            _, record, delivery, message = m.issue(
                org_id=caller.org_id,
                enrolment=enrolment,
                subject_id=session.id,
                purpose="login",
                policy=policy,
                ip=str(session.context.get("ip") or UNKNOWN_IP),
                accept_language=accept_language,
                link_url=link_url,
            )
            session.send_code(record, at=now)
            m.app.save(session, delivery)
            return Issued(enrolment, record, delivery, message)

        return m.send(decide, subject_id=authentication_id)

    def _enrolment(
        self,
        session: AuthenticationSession,
        method: str,
        enrolment_id: UUID | None,
        policy: Policy,
    ) -> Enrolment:
        m = self.messaging
        account = m.app.account_for(session.org_id, session.user_id)
        for enrolment in m.app.enrolments_of(account):
            if (
                enrolment.method == method
                and enrolment.is_usable
                and enrolment_id in (None, enrolment.id)
                and method in usable_methods([enrolment], policy, required_aal=session.required_aal)
            ):
                return enrolment
        raise InvalidRequestError(f"method {method!r} is not available for this login")


@dataclass(frozen=True, slots=True)
class ConfirmCodeEnrolment:
    """Activate a pending SMS, voice or email enrolment with the code it was sent."""

    messaging: Messaging

    def __call__(self, enrolment: Enrolment, *, code: str, policy: Policy) -> bool:
        """True when the code matched (the enrolment is then active). The caller saves."""
        m = self.messaging
        now = m.clock.now()
        try:
            record = enrolment.open_code(at=now)
        except CodeError:
            return False
        if sent_code_matches(m.hasher, code, record, subject_id=enrolment.id):
            enrolment.confirm_code(at=now)
            return True
        enrolment.miss_code(at=now)
        return False


@dataclass(frozen=True, slots=True)
class RecordDeliveryStatus:
    """A provider's signed delivery-status callback, recorded on its delivery."""

    app: IdentityApplication
    callbacks: DeliveryCallbacks
    clock: Clock
    public_url: str  # the server's public base URL, which providers sign callbacks under

    def __call__(self, provider: str, *, path: str, headers: dict[str, str], body: bytes) -> None:
        url = self.public_url.rstrip("/") + path
        try:
            status = self.callbacks.parse(provider, url=url, headers=headers, body=body)
        except InvalidCallbackError as error:
            raise UnauthorizedError(f"the callback did not verify: {error}") from None

        def decide() -> None:
            delivery = self.app.delivery_of(status.provider, status.provider_message_id)
            delivery.report_status(
                provider=status.provider,
                status=status.status,
                error_code=status.error_code,
                at=self.clock.now(),
            )
            self.app.save(delivery)

        retry_on_conflict(decide)
