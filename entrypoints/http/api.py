"""The /v1 JSON API: each handler translates the request, calls one use case, translates back."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.concurrency import sync_to_thread
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, PathParameter

from application.authentications import (
    Caller,
    GetAuthentication,
    Outcome,
    StartAuthentication,
    VerifyAuthentication,
)
from application.codes import (
    UNKNOWN_IP,
    RecordDeliveryStatus,
    ResendEnrolmentCode,
    SendLoginCode,
    SentCode,
    StartCodeEnrolment,
)
from application.enrolments import (
    ConfirmOtpEnrolment,
    ListEnrolments,
    ResynchroniseHotp,
    RevokeEnrolment,
    StartOtpEnrolment,
    UnlockEnrolment,
)
from application.errors import InvalidRequestError, UnauthorizedError
from application.organisations import (
    AuthenticateApiKey,
    ChangePolicy,
    EraseUser,
    GetPolicy,
    IssueApiKey,
    Principal,
)
from application.ports import RequestContext
from application.webauthn import (
    ConfirmWebAuthnEnrolment,
    StartWebAuthnEnrolment,
    VerifyWebAuthn,
    WebAuthnLoginOptions,
)
from entrypoints.http.problems import COMMON, problems
from entrypoints.http.schemas import (
    ApiKeyCreated,
    ApiKeyRequest,
    AuthenticationCreated,
    AuthenticationView,
    ChallengeRequest,
    CodeSentView,
    ConfirmRequest,
    EnrolmentCreated,
    EnrolmentRequest,
    EnrolmentStatus,
    EnrolmentSummary,
    PolicyChangeRequest,
    PolicyView,
    ResendRequest,
    ResynchroniseRequest,
    Risk,
    StartAuthenticationRequest,
    VerifyRequest,
    VerifyResponse,
    WebAuthnOptionsRequest,
)

UserIdPath = Annotated[
    str, PathParameter(min_length=1, max_length=256, description="The application's user id")
]
Api = NamedDependency[Any]


def principal_from(request: Request[Any, Any, Any], authenticate_api_key: Api) -> Principal:
    """The caller, from `Authorization: Bearer <api key>`."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise UnauthorizedError("send an API key as 'Authorization: Bearer <key>'")
    guard: AuthenticateApiKey = authenticate_api_key
    return guard(key.strip())


def _caller(principal: Principal) -> Caller:
    return Caller(org_id=principal.org_id, client_id=str(principal.key_id))


def _summary(data: dict[str, Any]) -> EnrolmentSummary:
    return msgspec.convert(data, EnrolmentSummary, from_attributes=False)


class EnrolmentController(Controller):
    path = "/v1"
    tags = ["enrolments"]
    security = [{"apiKey": []}]

    @post(
        "/users/{user_id:str}/enrolments",
        status_code=201,
        sync_to_thread=True,
        responses=problems(*COMMON, 404, 409),
        summary="Enrol an authenticator app, a security key, a platform authenticator or a passkey",
    )
    def enrol(
        self,
        user_id: FromPath[UserIdPath],
        data: JSONBody[EnrolmentRequest],
        principal: NamedDependency[Principal],
        start_enrolment: Api,
        start_webauthn_enrolment: Api,
        start_code_enrolment: Api,
    ) -> EnrolmentCreated:
        if data.method in ("sms", "voice", "email"):
            address = data.email if data.method == "email" else data.phone_number
            if address is None:
                field = "email" if data.method == "email" else "phone_number"
                raise InvalidRequestError(f"method {data.method!r} needs {field}")
            sender: StartCodeEnrolment = start_code_enrolment
            sent = sender(
                org_id=principal.org_id,
                user_id=user_id,
                method=data.method,
                address=address,
                label=data.label,
                locale=data.locale,
                ip=data.ip or UNKNOWN_IP,
                accept_language=data.accept_language,
                link_url=data.link_url,
            )
            return EnrolmentCreated(
                enrolment_id=sent.enrolment_id,
                method=data.method,
                status="pending",
                code_sent=_code_sent(sent),
            )
        if data.method == "webauthn":
            webauthn: StartWebAuthnEnrolment = start_webauthn_enrolment
            started = webauthn(
                org_id=principal.org_id,
                user_id=user_id,
                label=data.label,
                attachment=data.authenticator_attachment,
                resident_key=data.resident_key,
                user_verification=data.user_verification,
            )
            return EnrolmentCreated(
                enrolment_id=started.enrolment_id,
                method="webauthn",
                status="pending",
                options=started.options,
            )
        use_case: StartOtpEnrolment = start_enrolment
        created = use_case(
            org_id=principal.org_id,
            user_id=user_id,
            method=data.method,
            label=data.label,
            algorithm=data.algorithm,
            digits=data.digits,
            period=data.period,
        )
        return EnrolmentCreated(
            enrolment_id=created.enrolment_id,
            method=created.method,
            status="pending",
            secret=created.secret_b32,
            otpauth_uri=created.otpauth_uri,
            qr_svg=created.qr_svg,
        )

    @get(
        "/users/{user_id:str}/enrolments",
        sync_to_thread=True,
        responses=problems(*COMMON, 404),
        summary="List a user's authenticators (never a secret)",
    )
    def list_enrolments(
        self,
        user_id: FromPath[UserIdPath],
        principal: NamedDependency[Principal],
        list_enrolments: Api,
    ) -> list[EnrolmentSummary]:
        use_case: ListEnrolments = list_enrolments
        return [_summary(e) for e in use_case(org_id=principal.org_id, user_id=user_id)]

    @delete(
        "/users/{user_id:str}",
        status_code=204,
        sync_to_thread=True,
        responses=problems(*COMMON, 403, 404),
        summary="Erase a user: revoke every authenticator and crypto-shred their secrets",
    )
    def erase_user(
        self, user_id: FromPath[UserIdPath], principal: NamedDependency[Principal], erase_user: Api
    ) -> None:
        principal.require_admin()
        use_case: EraseUser = erase_user
        use_case(org_id=principal.org_id, user_id=user_id, by=f"key:{principal.key_id}")

    @get(
        "/enrolments/{enrolment_id:uuid}",
        sync_to_thread=True,
        responses=problems(*COMMON, 404),
        summary="One authenticator",
    )
    def show(
        self, enrolment_id: FromPath[UUID], principal: NamedDependency[Principal], identity_app: Api
    ) -> EnrolmentSummary:
        return _summary(identity_app.get_enrolment(enrolment_id, org_id=principal.org_id).summary())

    @post(
        "/enrolments/{enrolment_id:uuid}/confirm",
        status_code=200,
        sync_to_thread=True,
        responses=problems(*COMMON, 404, 409, 429),
        summary="Activate an enrolment with its first code, or with the WebAuthn credential",
    )
    def confirm(
        self,
        enrolment_id: FromPath[UUID],
        data: JSONBody[ConfirmRequest],
        principal: NamedDependency[Principal],
        confirm_enrolment: Api,
        confirm_webauthn_enrolment: Api,
    ) -> EnrolmentStatus:
        if (data.code is None) == (data.credential is None):
            raise InvalidRequestError("send either code or credential")
        if data.credential is not None:
            webauthn: ConfirmWebAuthnEnrolment = confirm_webauthn_enrolment
            webauthn(org_id=principal.org_id, enrolment_id=enrolment_id, credential=data.credential)
        else:
            use_case: ConfirmOtpEnrolment = confirm_enrolment
            use_case(org_id=principal.org_id, enrolment_id=enrolment_id, code=data.code or "")
        return EnrolmentStatus(enrolment_id=enrolment_id, status="active")

    @post(
        "/enrolments/{enrolment_id:uuid}/resync",
        status_code=200,
        sync_to_thread=True,
        responses=problems(*COMMON, 404, 409, 429),
        summary="Resynchronise an HOTP counter from two consecutive codes",
    )
    def resync(
        self,
        enrolment_id: FromPath[UUID],
        data: JSONBody[ResynchroniseRequest],
        principal: NamedDependency[Principal],
        resynchronise_hotp: Api,
    ) -> EnrolmentStatus:
        use_case: ResynchroniseHotp = resynchronise_hotp
        use_case(
            org_id=principal.org_id, enrolment_id=enrolment_id, code1=data.code1, code2=data.code2
        )
        return EnrolmentStatus(enrolment_id=enrolment_id, status="active")

    @post(
        "/enrolments/{enrolment_id:uuid}/resend",
        status_code=201,
        sync_to_thread=True,
        responses=problems(*COMMON, 404, 409, 429),
        summary="Send a pending SMS, voice or email enrolment a new code",
    )
    def resend(
        self,
        enrolment_id: FromPath[UUID],
        data: JSONBody[ResendRequest],
        principal: NamedDependency[Principal],
        resend_enrolment_code: Api,
    ) -> CodeSentView:
        use_case: ResendEnrolmentCode = resend_enrolment_code
        sent = use_case(
            org_id=principal.org_id,
            enrolment_id=enrolment_id,
            ip=data.ip or UNKNOWN_IP,
            accept_language=data.accept_language,
        )
        return _code_sent(sent)

    @delete(
        "/enrolments/{enrolment_id:uuid}",
        status_code=204,
        sync_to_thread=True,
        responses=problems(*COMMON, 404),
        summary="Remove an authenticator",
    )
    def revoke(
        self,
        enrolment_id: FromPath[UUID],
        principal: NamedDependency[Principal],
        revoke_enrolment: Api,
    ) -> None:
        use_case: RevokeEnrolment = revoke_enrolment
        use_case(org_id=principal.org_id, enrolment_id=enrolment_id, by=f"key:{principal.key_id}")

    @post(
        "/enrolments/{enrolment_id:uuid}/unlock",
        status_code=200,
        sync_to_thread=True,
        responses=problems(*COMMON, 403, 404),
        summary="Administrators: lift a lock after too many failures",
    )
    def unlock(
        self,
        enrolment_id: FromPath[UUID],
        principal: NamedDependency[Principal],
        unlock_enrolment: Api,
    ) -> EnrolmentSummary:
        principal.require_admin()
        use_case: UnlockEnrolment = unlock_enrolment
        return _summary(
            use_case(
                org_id=principal.org_id, enrolment_id=enrolment_id, by=f"key:{principal.key_id}"
            )
        )


def _code_sent(sent: SentCode) -> CodeSentView:
    return CodeSentView(
        method=sent.method,
        enrolment_id=sent.enrolment_id,
        destination=sent.destination,
        expires_at=sent.expires_at,
        resend_after=sent.resend_after,
        delivery_id=sent.delivery_id,
        delivery_status=sent.delivery_status,  # type: ignore[arg-type]
        provider=sent.provider,
    )


def _token_fields(outcome: Outcome) -> dict[str, Any]:
    if outcome.token is None:
        return {}
    return {
        "access_token": outcome.token.access_token,
        "token_type": "Bearer",
        "expires_in": outcome.token.expires_in,
    }


class AuthenticationController(Controller):
    path = "/v1/authentications"
    tags = ["authentications"]
    security = [{"apiKey": []}]

    @post(
        "/",
        status_code=201,
        sync_to_thread=True,
        responses=problems(*COMMON, 429),
        summary="Start a login; with method and code, verify it in the same call",
    )
    def start(
        self,
        data: JSONBody[StartAuthenticationRequest],
        principal: NamedDependency[Principal],
        start_authentication: Api,
    ) -> AuthenticationCreated:
        use_case: StartAuthentication = start_authentication
        context = RequestContext(
            ip=data.context.ip, user_agent=data.context.user_agent, device_id=data.context.device_id
        )
        outcome = use_case(
            caller=_caller(principal),
            user_id=data.user_id,
            context=context,
            operation=data.operation,
            method=data.method,
            code=data.code,
            enrolment_id=data.enrolment_id,
        )
        session = outcome.session
        return AuthenticationCreated(
            authentication_id=session.id,
            status=session.status,  # type: ignore[arg-type]
            required_aal=session.required_aal,
            methods=list(session.methods),
            risk=msgspec.convert(session.risk, Risk),
            expires_at=session.expires_at,
            notice=outcome.notice,
            **_token_fields(outcome),
        )

    @post(
        "/{authentication_id:uuid}/verify",
        status_code=200,
        sync_to_thread=True,
        responses=problems(*COMMON, 404, 409, 429),
        summary="Verify a factor: a code, or a WebAuthn assertion",
    )
    def verify(
        self,
        authentication_id: FromPath[UUID],
        data: JSONBody[VerifyRequest],
        principal: NamedDependency[Principal],
        verify_authentication: Api,
        verify_webauthn: Api,
    ) -> VerifyResponse:
        if data.method == "webauthn":
            if data.credential is None or data.code is not None:
                raise InvalidRequestError("method 'webauthn' takes a credential and no code")
            key: VerifyWebAuthn = verify_webauthn
            outcome = key(
                caller=_caller(principal),
                authentication_id=authentication_id,
                credential=data.credential,
            )
        else:
            if data.code is None or data.credential is not None:
                raise InvalidRequestError(f"method {data.method!r} takes a code and no credential")
            use_case: VerifyAuthentication = verify_authentication
            outcome = use_case(
                caller=_caller(principal),
                authentication_id=authentication_id,
                method=data.method,
                code=data.code,
                enrolment_id=data.enrolment_id,
            )
        return VerifyResponse(
            authentication_id=authentication_id,
            status=outcome.session.status,  # type: ignore[arg-type]
            **_token_fields(outcome),
        )

    @post(
        "/{authentication_id:uuid}/challenges",
        status_code=201,
        sync_to_thread=True,
        responses=problems(*COMMON, 404, 409, 429),
        summary="Send a code for this login by SMS, voice call or email",
    )
    def challenge(
        self,
        authentication_id: FromPath[UUID],
        data: JSONBody[ChallengeRequest],
        principal: NamedDependency[Principal],
        send_login_code: Api,
    ) -> CodeSentView:
        use_case: SendLoginCode = send_login_code
        sent = use_case(
            caller=_caller(principal),
            authentication_id=authentication_id,
            method=data.method,
            enrolment_id=data.enrolment_id,
            accept_language=data.accept_language,
            link_url=data.link_url,
        )
        return _code_sent(sent)

    @post(
        "/{authentication_id:uuid}/webauthn/options",
        status_code=200,
        sync_to_thread=True,
        responses=problems(*COMMON, 404, 409),
        summary="WebAuthn request options (PublicKeyCredentialRequestOptionsJSON) for this login",
    )
    def webauthn_options(
        self,
        authentication_id: FromPath[UUID],
        data: JSONBody[WebAuthnOptionsRequest],
        principal: NamedDependency[Principal],
        webauthn_login_options: Api,
    ) -> dict[str, Any]:
        use_case: WebAuthnLoginOptions = webauthn_login_options
        return use_case(caller=_caller(principal), authentication_id=authentication_id)

    @get(
        "/{authentication_id:uuid}",
        sync_to_thread=True,
        responses=problems(*COMMON, 404),
        summary="A login's state",
    )
    def show(
        self,
        authentication_id: FromPath[UUID],
        principal: NamedDependency[Principal],
        get_authentication: Api,
    ) -> AuthenticationView:
        use_case: GetAuthentication = get_authentication
        return msgspec.convert(
            use_case(org_id=principal.org_id, authentication_id=authentication_id),
            AuthenticationView,
            from_attributes=False,
        )


class OrganisationController(Controller):
    path = "/v1"
    tags = ["organisation"]
    security = [{"apiKey": []}]

    @get(
        "/policy",
        sync_to_thread=True,
        responses=problems(*COMMON),
        summary="The organisation's policy",
    )
    def policy(self, principal: NamedDependency[Principal], get_policy: Api) -> PolicyView:
        use_case: GetPolicy = get_policy
        return msgspec.convert(use_case(org_id=principal.org_id), PolicyView)

    @patch(
        "/policy",
        sync_to_thread=True,
        responses=problems(*COMMON, 403),
        summary="Administrators: change policy settings",
    )
    def change_policy(
        self,
        data: JSONBody[PolicyChangeRequest],
        principal: NamedDependency[Principal],
        change_policy: Api,
    ) -> PolicyView:
        use_case: ChangePolicy = change_policy
        return msgspec.convert(use_case(principal=principal, changes=data.changes()), PolicyView)

    @post(
        "/api-keys",
        status_code=201,
        sync_to_thread=True,
        responses=problems(*COMMON, 403),
        summary="Administrators: issue another API key (shown once)",
    )
    def issue_key(
        self,
        data: JSONBody[ApiKeyRequest],
        principal: NamedDependency[Principal],
        issue_api_key: Api,
    ) -> ApiKeyCreated:
        principal.require_admin()
        use_case: IssueApiKey = issue_api_key
        key_id, key = use_case(org_id=principal.org_id, role=data.role, label=data.label)
        return ApiKeyCreated(key_id=key_id, role=data.role, label=data.label, api_key=key)


class DeliveryCallbackController(Controller):
    """Providers' signed delivery-status callbacks; the signature is the authentication."""

    path = "/v1/providers"
    tags = ["messaging"]

    @post(
        "/{provider:str}/status",
        status_code=204,
        responses=problems(400, 401, 404, 413, 422, 500),
        summary="A provider's delivery-status callback (Twilio, Vonage, signed webhook)",
    )
    async def status(
        self,
        provider: FromPath[Annotated[str, PathParameter(max_length=32)]],
        request: Request[Any, Any, Any],
        record_delivery_status: Api,
    ) -> None:
        use_case: RecordDeliveryStatus = record_delivery_status
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        await sync_to_thread(lambda: use_case(provider, path=path, headers=headers, body=body))
