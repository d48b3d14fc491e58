"""Use cases of a login: start it, verify a factor, read its state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from application.errors import ConflictError, InvalidRequestError
from application.identity import IdentityApplication, retry_on_conflict
from application.otp import CodeChecker, refuse_code
from application.ports import (
    Clock,
    CodeHasher,
    IdGenerator,
    RequestContext,
    RiskAssessor,
    TokenClaims,
    TokenIssuer,
)
from domain.account import Account
from domain.assurance import (
    ACR_BY_AAL,
    OTP_METHODS,
    OUT_OF_BAND_METHODS,
    RESTRICTED_METHODS,
    aal_for_factors,
)
from domain.authentication import AuthenticationSession, SessionClosedError
from domain.codes import NoCodeError
from domain.enrolment import Enrolment
from domain.policy import Policy

#: Methods verified with a typed code: authenticator apps and codes Tessera sends.
CODE_METHODS = OTP_METHODS | OUT_OF_BAND_METHODS
SENT_CODE_DIGITS = 6


def code_binding(subject_id: UUID, channel: str) -> str:
    """What a sent code's keyed hash is bound to: its login (or enrolment) and channel."""
    return f"{subject_id}/{channel}"


def sent_code_matches(
    hasher: CodeHasher, code: str, record: dict[str, Any], *, subject_id: UUID
) -> bool:
    """Whether `code` (spaces and dashes allowed) is the SMS, voice or email code `record` keeps
    the hash of; compared in constant time by the hasher."""
    cleaned = "".join(ch for ch in code if ch.isdigit())
    return len(cleaned) == SENT_CODE_DIGITS and hasher.matches(
        cleaned, binding=code_binding(subject_id, record["channel"]), digest=record["code_hash"]
    )


def open_session(app: IdentityApplication, session: AuthenticationSession, *, at: datetime) -> None:
    """Raise ConflictError unless the login still takes attempts; an expiry is saved once
    it is noticed."""
    try:
        session.ensure_open(at=at)
    except SessionClosedError as closed:
        app.save_changed(session)
        raise ConflictError(f"the authentication is {closed.status}") from None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class Outcome:
    session: AuthenticationSession
    token: IssuedToken | None = None
    notice: str | None = None  # advice for the user, e.g. to add a stronger authenticator


def restricted_notice(
    enrolments: list[Enrolment], policy: Policy, *, required_aal: int | None
) -> str | None:
    """NIST SP 800-63B §5.1.3.3: tell a user whose SMS or voice authenticator does not count
    at this level to add a stronger one."""
    if required_aal is None:
        return None
    refused = sorted(
        {
            e.method
            for e in enrolments
            if e.is_usable
            and e.method in RESTRICTED_METHODS
            and not policy.counts_at(e.method, required_aal)
        }
    )
    if not refused:
        return None
    names = " and ".join({"sms": "SMS", "voice": "voice call"}[m] for m in refused)
    return (
        f"{names} codes are not accepted at AAL{required_aal}: add a stronger authenticator, "
        "such as an authenticator app, a security key or a passkey"
    )


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a login needs from the store, loaded once per request."""

    policy: Policy
    account: Account
    enrolments: list[Enrolment]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the organisation and the API key (the token's `client_id`)."""

    org_id: UUID
    client_id: str


def session_view(session: AuthenticationSession, *, at: datetime) -> dict[str, Any]:
    return {
        "authentication_id": session.id,
        "user_id": session.user_id,
        "status": session.status_at(at),
        "required_aal": session.required_aal,
        "methods": list(session.methods),
        "risk": dict(session.risk),
        "operation": session.operation,
        "aal": session.aal,
        "amr": list(session.amr),
        "attempts": session.attempts,
        "created_at": session.created_at,
        "expires_at": session.expires_at,
        "auth_time": session.auth_time,
    }


def usable_methods(
    enrolments: list[Enrolment], policy: Policy, *, required_aal: int | None
) -> list[str]:
    """Methods of the user's active authenticators that the policy allows and that suffice."""
    if required_aal is None:
        return []
    primary = policy.settings["primary_factor_verified"]
    methods: list[str] = []
    for enrolment in enrolments:
        method = enrolment.method
        reachable = (
            enrolment.webauthn_max_aal()
            if method == "webauthn"
            else aal_for_factors([method], primary_factor_verified=primary)
        )
        if (
            enrolment.is_usable
            and policy.allows(method)
            and policy.counts_at(method, required_aal)
            and method not in methods
            and reachable >= required_aal
        ):
            methods.append(method)
    return methods


@dataclass(frozen=True, slots=True)
class Verifier:
    """Decide one factor on loaded aggregates, then save them together, then sign a token."""

    app: IdentityApplication
    checker: CodeChecker
    tokens: TokenIssuer
    ids: IdGenerator
    hasher: CodeHasher | None = None  # SMS, voice and email codes

    def verify(
        self,
        session: AuthenticationSession,
        *,
        caller: Caller,
        method: str,
        code: str,
        enrolment_id: UUID | None,
        at: datetime,
        loaded: Loaded | None = None,
    ) -> Outcome:
        policy = loaded.policy if loaded else self.app.read_policy(caller.org_id)
        if session.usernameless:
            raise InvalidRequestError("a login without a user_id can only use a passkey")
        if method not in CODE_METHODS or not policy.allows(method):
            raise InvalidRequestError(f"method {method!r} is not available for this login")
        if session.required_aal is not None and not policy.counts_at(method, session.required_aal):
            raise InvalidRequestError(
                f"method {method!r} is not accepted at AAL{session.required_aal}: "
                "add a stronger authenticator"
            )
        if session.required_aal is not None and (
            aal_for_factors([method], primary_factor_verified=session.primary_factor_verified)
            < session.required_aal
        ):
            # Refused before any code is judged, so no code is used up in vain.
            raise InvalidRequestError(
                f"method {method!r} cannot reach AAL{session.required_aal} for this login"
            )
        open_session(self.app, session, at=at)
        if loaded is None:
            account = self.app.account_for(caller.org_id, session.user_id)
            loaded = Loaded(policy, account, self.app.enrolments_of(account))
        account = loaded.account
        self.checker.check_throttle(account, policy, at=at)
        if method in OUT_OF_BAND_METHODS:
            return self._verify_sent_code(session, policy, loaded, caller, method, code, at=at)
        candidates = [
            e
            for e in loaded.enrolments
            if e.method == method and e.is_usable and enrolment_id in (None, e.id)
        ]
        found = self.checker.find_match(code, candidates, policy, account=account, at=at)
        if found is None:
            self.checker.record_failure(candidates, policy, account=account, at=at)
            session.fail_attempt(method, at=at)
            self.app.save_changed(session, account, *candidates)
            raise refuse_code(session.id)
        enrolment, moving_factor = found
        enrolment.accept_code(moving_factor, at=at)
        for other in candidates:
            other.clear_failures(at=at)  # a miss counted against every candidate is forgiven
        account.clear_failures(by="user", at=at)
        token_claims = None
        if session.verify_factor(method, enrolment.id, at=at):
            token_claims = self.complete(session, policy, caller=caller, at=at)
        self.app.save_changed(session, account, *candidates)
        if token_claims is None:
            return Outcome(session)
        return Outcome(session, self.sign(token_claims, at=at))

    def _verify_sent_code(
        self,
        session: AuthenticationSession,
        policy: Policy,
        loaded: Loaded,
        caller: Caller,
        method: str,
        code: str,
        *,
        at: datetime,
    ) -> Outcome:
        """An SMS, voice or email code: it must be the one sent for this login and channel, to
        an authenticator that is still active, and it works once."""
        try:
            record = session.open_code(method, at=at)
        except NoCodeError as error:
            raise ConflictError(str(error)) from None
        account = loaded.account
        enrolment = next(
            (e for e in loaded.enrolments if str(e.id) == record["enrolment_id"] and e.is_usable),
            None,
        )
        matched = self.hasher is not None and sent_code_matches(
            self.hasher, code, record, subject_id=session.id
        )
        if not matched or enrolment is None:
            account.record_failure(at=at)
            session.miss_code(method, at=at)
            self.app.save_changed(session, account)
            raise refuse_code(session.id)
        enrolment.use_code(at=at)
        account.clear_failures(by="user", at=at)
        token_claims = None
        if session.verify_factor(method, enrolment.id, at=at):
            token_claims = self.complete(session, policy, caller=caller, at=at)
        self.app.save_changed(session, account, enrolment)
        if token_claims is None:
            return Outcome(session)
        return Outcome(session, self.sign(token_claims, at=at))

    def complete(
        self, session: AuthenticationSession, policy: Policy, *, caller: Caller, at: datetime
    ) -> TokenClaims:
        """Mark a session that reached its AAL satisfied; the claims of its one token."""
        ttl = timedelta(seconds=policy.settings["token_ttl_seconds"])
        token_id = str(self.ids.new_id())
        session.satisfy(token_id=token_id, token_ttl=ttl, at=at)
        acr = ACR_BY_AAL[session.aal]
        if policy.settings["acr_format"] == "openid-eap":
            acr = session.phishing_resistance() or acr
        return TokenClaims(
            subject=session.user_id,
            audience=policy.settings["token_audience"] or f"urn:tessera:org:{caller.org_id}",
            client_id=caller.client_id,
            org_id=caller.org_id,
            token_id=token_id,
            issued_at=at,
            expires_at=at + ttl,
            auth_time=at,
            acr=acr,
            amr=list(session.amr),
        )

    def sign(self, claims: TokenClaims, *, at: datetime) -> IssuedToken:
        expires_in = int((claims.expires_at - at).total_seconds())
        return IssuedToken(access_token=self.tokens.issue(claims), expires_in=expires_in)


@dataclass(frozen=True, slots=True)
class StartAuthentication:
    """Open a login: assess risk, let the policy set the AAL, and list usable methods.

    With `method` and `code` it also verifies them in the same transaction (the one-call
    form); a wrong code then answers exactly as `VerifyAuthentication` would.
    """

    app: IdentityApplication
    risk: RiskAssessor
    verifier: Verifier
    ids: IdGenerator
    clock: Clock

    def __call__(
        self,
        *,
        caller: Caller,
        user_id: str | None,
        context: RequestContext,
        operation: str | None = None,
        method: str | None = None,
        code: str | None = None,
        enrolment_id: UUID | None = None,
    ) -> Outcome:
        """`user_id` None starts a usernameless login that a passkey completes."""
        if (method is None) != (code is None):
            raise InvalidRequestError("send both method and code, or neither")
        if user_id is None and method is not None:
            raise InvalidRequestError("a login without a user_id can only use a passkey")
        session_id = self.ids.new_id()

        def decide() -> Outcome:
            now = self.clock.now()
            policy = self.app.read_policy(caller.org_id)
            if user_id is None:  # usernameless: no account to read until a passkey names it
                loaded = Loaded(policy, Account(org_id=caller.org_id, user_id=""), [])
            else:
                account = self.app.account_for(caller.org_id, user_id)
                loaded = Loaded(policy, account, self.app.enrolments_of(account))
            session = self._open(
                session_id, caller, user_id or "", context, operation, loaded, at=now
            )
            if method is None or code is None or session.status != "pending":
                self.app.save(session)
                notice = restricted_notice(
                    loaded.enrolments, policy, required_aal=session.required_aal
                )
                return Outcome(session, notice=notice)
            return self.verifier.verify(
                session,
                caller=caller,
                method=method,
                code=code,
                enrolment_id=enrolment_id,
                at=now,
                loaded=loaded,
            )

        return retry_on_conflict(decide)

    def _open(
        self,
        session_id: UUID,
        caller: Caller,
        user_id: str,
        context: RequestContext,
        operation: str | None,
        loaded: Loaded,
        *,
        at: datetime,
    ) -> AuthenticationSession:
        policy = loaded.policy
        assessment = self.risk.assess(org_id=caller.org_id, user_id=user_id, context=context, at=at)
        required = policy.required_aal(operation=operation, risk_level=assessment.level)
        return AuthenticationSession.start(
            session_id=session_id,
            org_id=caller.org_id,
            user_id=user_id,
            context={
                "ip": context.ip,
                "user_agent": context.user_agent,
                "device_id": context.device_id,
            },
            operation=operation,
            risk=assessment.as_dict(),
            required_aal=required,
            methods=(
                usable_methods(loaded.enrolments, policy, required_aal=required)
                if user_id
                else ["webauthn"]
                if required is not None and policy.allows("webauthn")
                else []
            ),
            primary_factor_verified=policy.settings["primary_factor_verified"],
            max_attempts=policy.settings["session_attempts"],
            ttl=timedelta(seconds=policy.settings["session_ttl_seconds"]),
            at=at,
        )


@dataclass(frozen=True, slots=True)
class VerifyAuthentication:
    """Check one factor of a pending login; satisfied sessions come back with a token."""

    app: IdentityApplication
    verifier: Verifier
    clock: Clock

    def __call__(
        self,
        *,
        caller: Caller,
        authentication_id: UUID,
        method: str,
        code: str,
        enrolment_id: UUID | None = None,
    ) -> Outcome:
        def decide() -> Outcome:
            session = self.app.get_session(authentication_id, org_id=caller.org_id)
            return self.verifier.verify(
                session,
                caller=caller,
                method=method,
                code=code,
                enrolment_id=enrolment_id,
                at=self.clock.now(),
            )

        return retry_on_conflict(decide)


@dataclass(frozen=True, slots=True)
class GetAuthentication:
    app: IdentityApplication
    clock: Clock

    def __call__(self, *, org_id: UUID, authentication_id: UUID) -> dict[str, Any]:
        session = self.app.get_session(authentication_id, org_id=org_id)
        return session_view(session, at=self.clock.now())
