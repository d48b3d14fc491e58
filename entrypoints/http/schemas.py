"""Request and response bodies as msgspec Structs; requests refuse unknown fields."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

UserId = Annotated[str, Meta(min_length=1, max_length=256, description="The application's user id")]
Code = Annotated[str, Meta(min_length=1, max_length=32, description="The one-time code as typed")]
Method = Literal["totp", "hotp"]
EnrolMethod = Literal["totp", "hotp", "webauthn", "sms", "voice", "email"]
VerifyMethod = Literal["totp", "hotp", "webauthn", "sms", "voice", "email"]
SentMethod = Literal["sms", "voice", "email"]
Locale = Annotated[
    str, Meta(pattern="^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$", max_length=35, description="BCP 47")
]
LinkUrl = Annotated[
    str,
    Meta(
        pattern=r"^(https://[^\s#]+|http://localhost(:[0-9]{1,5})?(/[^\s#]*)?)$",
        max_length=500,
        description="Email only: the application's page the message links to, with "
        "`authentication_id` (or `enrolment_id`) and `code` added as query parameters",
    ),
]
AcceptLanguage = Annotated[
    str, Meta(max_length=256, description="The end user's Accept-Language header, as sent")
]
AnyMethod = Literal["totp", "hotp", "webauthn", "sms", "voice", "email"]
Requirement = Literal["discouraged", "preferred", "required"]
#: A browser's `PublicKeyCredential.toJSON()`, exactly as produced (W3C members, extras included).
Credential = Annotated[
    dict[str, Any],
    Meta(
        description="PublicKeyCredential.toJSON(): RegistrationResponseJSON or "
        "AuthenticationResponseJSON"
    ),
]
Timestamp = Annotated[datetime, Meta(tz=True, description="RFC 3339, in UTC")]


class Request(Struct, forbid_unknown_fields=True):
    pass


class EnrolmentRequest(Request):
    method: EnrolMethod
    label: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    algorithm: Literal["SHA1", "SHA256", "SHA512"] = "SHA1"
    digits: Literal[6, 8] = 6
    period: Annotated[int, Meta(ge=15, le=120)] = 30
    # WebAuthn only: WebAuthn enum values, passed into `authenticatorSelection` unchanged
    # unless the policy demands more.
    authenticator_attachment: Literal["platform", "cross-platform"] | None = None
    resident_key: Requirement = "preferred"
    user_verification: Requirement = "preferred"
    # SMS and voice: the number (E.164, or national with a leading country code); email: the
    # address. `locale` is the user's language for messages; `accept_language` and `ip` come
    # from the user's browser, for the language and the toll-fraud caps.
    phone_number: Annotated[str, Meta(min_length=3, max_length=32)] | None = None
    email: Annotated[str, Meta(min_length=3, max_length=254)] | None = None
    locale: Locale | None = None
    accept_language: AcceptLanguage | None = None
    ip: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    link_url: LinkUrl | None = None


class ConfirmRequest(Request):
    """`code` for an authenticator app; `credential` for WebAuthn."""

    code: Code | None = None
    credential: Credential | None = None


class ResynchroniseRequest(Request):
    code1: Code
    code2: Code


class RequestContextBody(Request):
    ip: Annotated[str, Meta(min_length=1, max_length=64, description="The end user's IP")]
    user_agent: Annotated[str, Meta(max_length=1024)]
    device_id: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    accept_language: AcceptLanguage | None = None


class StartAuthenticationRequest(Request):
    context: RequestContextBody
    user_id: UserId | None = None  # omitted: a usernameless login that a passkey completes
    operation: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    method: Method | None = None
    code: Code | None = None
    enrolment_id: UUID | None = None


class VerifyRequest(Request):
    """`code` for an authenticator app; `credential` for `"method": "webauthn"`."""

    method: VerifyMethod
    code: Code | None = None
    credential: Credential | None = None
    enrolment_id: UUID | None = None


class ChallengeRequest(Request):
    """Send a code for this login over SMS, a voice call or email."""

    method: SentMethod
    enrolment_id: UUID | None = None
    accept_language: AcceptLanguage | None = None
    link_url: LinkUrl | None = None


class ResendRequest(Request):
    accept_language: AcceptLanguage | None = None
    ip: Annotated[str, Meta(min_length=1, max_length=64)] | None = None


class CodeSentView(Struct):
    """A code went out (or every provider failed: `delivery_status` "failed"). The destination
    is masked; the code itself is never in a response."""

    method: str
    enrolment_id: UUID
    destination: str
    expires_at: Timestamp
    resend_after: Timestamp
    delivery_id: UUID
    delivery_status: Literal["sent", "failed"]
    provider: str | None


class WebAuthnOptionsRequest(Request):
    """An empty JSON object: the options are decided by the login and the policy."""


RiskAction = Literal["allow", "step_up", "deny"]
Aaguid = Annotated[
    str,
    Meta(pattern="^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]
Origin = Annotated[str, Meta(pattern="^https?://[a-z0-9.-]+(:[0-9]{1,5})?$", max_length=200)]


class RiskResponseChange(Request):
    """What to do at each risk level; a Struct, not a dict, so the schema names the levels."""

    low: RiskAction | UnsetType = UNSET
    medium: RiskAction | UnsetType = UNSET
    high: RiskAction | UnsetType = UNSET


Region = Annotated[str, Meta(pattern="^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
HourlyCap = Annotated[int, Meta(ge=1, le=10_000_000)]


class SendCapsChange(Request):
    """Toll-fraud caps: codes per hour per number, IP, organisation and destination country."""

    number: HourlyCap | UnsetType = UNSET
    ip: HourlyCap | UnsetType = UNSET
    organisation: HourlyCap | UnsetType = UNSET
    country: HourlyCap | UnsetType = UNSET


def _set_fields(struct: Struct) -> dict[str, Any]:
    return {k: v for k, v in msgspec.structs.asdict(struct).items() if v is not UNSET}


class PolicyChangeRequest(Request):
    allowed_methods: list[AnyMethod] | UnsetType = UNSET
    login_aal: Annotated[int, Meta(ge=1, le=3)] | UnsetType = UNSET
    primary_factor_verified: bool | UnsetType = UNSET
    step_up: (
        dict[Annotated[str, Meta(min_length=1, max_length=64)], Annotated[int, Meta(ge=1, le=3)]]
        | UnsetType
    ) = UNSET
    risk_response: RiskResponseChange | UnsetType = UNSET
    max_failed_attempts: Annotated[int, Meta(ge=1, le=100)] | UnsetType = UNSET
    free_attempts: Annotated[int, Meta(ge=0, le=100)] | UnsetType = UNSET
    max_backoff_seconds: Annotated[int, Meta(ge=1, le=86400)] | UnsetType = UNSET
    session_attempts: Annotated[int, Meta(ge=1, le=100)] | UnsetType = UNSET
    session_ttl_seconds: Annotated[int, Meta(ge=30, le=3600)] | UnsetType = UNSET
    totp_drift_steps: Annotated[int, Meta(ge=0, le=10)] | UnsetType = UNSET
    hotp_look_ahead: Annotated[int, Meta(ge=0, le=100)] | UnsetType = UNSET
    token_ttl_seconds: Annotated[int, Meta(ge=30, le=86400)] | UnsetType = UNSET
    token_audience: Annotated[str, Meta(min_length=1, max_length=200)] | UnsetType | None = UNSET
    acr_format: Literal["nist", "openid-eap"] | UnsetType = UNSET
    webauthn_attestation: Literal["any", "attested"] | UnsetType = UNSET
    webauthn_aaguid_allow: list[Aaguid] | UnsetType = UNSET
    webauthn_aaguid_deny: list[Aaguid] | UnsetType = UNSET
    webauthn_user_verification: Requirement | UnsetType = UNSET
    webauthn_top_origins: list[Origin] | UnsetType = UNSET
    webauthn_reject_clones: bool | UnsetType = UNSET
    code_ttl_seconds: Annotated[int, Meta(ge=60, le=900)] | UnsetType = UNSET
    code_max_tries: Annotated[int, Meta(ge=1, le=10)] | UnsetType = UNSET
    code_resend_seconds: Annotated[int, Meta(ge=0, le=600)] | UnsetType = UNSET
    restricted_max_aal: Annotated[int, Meta(ge=1, le=2)] | UnsetType = UNSET
    phone_refuse_voip: bool | UnsetType = UNSET
    phone_countries: list[Region] | UnsetType = UNSET
    send_caps: SendCapsChange | UnsetType = UNSET
    usual_countries: list[Region] | UnsetType = UNSET
    unusual_burst: Annotated[int, Meta(ge=1, le=100000)] | UnsetType = UNSET

    def changes(self) -> dict[str, Any]:
        return {
            k: _set_fields(v) if isinstance(v, Struct) else v for k, v in _set_fields(self).items()
        }


class ApiKeyRequest(Request):
    role: Literal["application", "admin"]
    label: Annotated[str, Meta(min_length=1, max_length=64)]


class EnrolmentCreated(Struct, omit_defaults=True):
    """Authenticator apps get `secret`, `otpauth_uri` and `qr_svg`; WebAuthn gets `options`
    (PublicKeyCredentialCreationOptionsJSON, for `parseCreationOptionsFromJSON`)."""

    enrolment_id: UUID
    method: str
    status: str
    secret: str | None = None
    otpauth_uri: str | None = None
    qr_svg: str | None = None
    options: dict[str, Any] | None = None
    code_sent: CodeSentView | None = None


class EnrolmentStatus(Struct):
    enrolment_id: UUID
    status: str


class EnrolmentSummary(Struct):
    enrolment_id: UUID
    method: str
    label: str
    status: Literal["pending", "active", "locked", "suspended", "revoked"]
    created_at: Timestamp
    confirmed_at: Timestamp | None
    last_used_at: Timestamp | None
    algorithm: str | UnsetType = UNSET
    digits: int | UnsetType = UNSET
    period: int | UnsetType = UNSET
    authenticator: AuthenticatorView | UnsetType = UNSET
    suspended_reason: str | UnsetType = UNSET
    destination: str | UnsetType = UNSET


class AuthenticatorView(Struct):
    """A WebAuthn credential's authenticator, as registered (never key material)."""

    aaguid: str
    name: str | None
    attestation: str
    attested: bool
    backup_eligible: bool
    backed_up: bool
    user_verification_required: bool
    transports: list[str]
    attachment: Literal["platform", "cross-platform"] | None  # as requested at enrolment
    resident_key: Literal["discouraged", "preferred", "required"] | None
    max_aal: int


class Risk(Struct):
    score: int
    level: Literal["low", "medium", "high"]
    reasons: list[str]


class AuthenticationCreated(Struct, omit_defaults=True):
    authentication_id: UUID
    status: Literal["pending", "satisfied", "failed", "expired"]
    required_aal: int | None
    methods: list[str]
    risk: Risk
    expires_at: Timestamp
    access_token: str | None = None
    token_type: Literal["Bearer"] | None = None
    expires_in: int | None = None
    notice: str | None = None


class VerifyResponse(Struct, omit_defaults=True):
    authentication_id: UUID
    status: Literal["pending", "satisfied"]
    access_token: str | None = None
    token_type: Literal["Bearer"] | None = None
    expires_in: int | None = None


class AuthenticationView(Struct):
    authentication_id: UUID
    user_id: str
    status: Literal["pending", "satisfied", "failed", "expired"]
    required_aal: int | None
    methods: list[str]
    risk: Risk
    operation: str | None
    aal: int
    amr: list[str]
    attempts: int
    created_at: Timestamp
    expires_at: Timestamp
    auth_time: Timestamp | None


class PolicyView(Struct):
    allowed_methods: list[str]
    login_aal: int
    primary_factor_verified: bool
    step_up: dict[str, int]
    risk_response: dict[str, str]
    max_failed_attempts: int
    free_attempts: int
    max_backoff_seconds: int
    session_attempts: int
    session_ttl_seconds: int
    totp_drift_steps: int
    hotp_look_ahead: int
    token_ttl_seconds: int
    token_audience: str | None
    acr_format: str
    webauthn_attestation: str
    webauthn_aaguid_allow: list[str]
    webauthn_aaguid_deny: list[str]
    webauthn_user_verification: str
    webauthn_top_origins: list[str]
    webauthn_reject_clones: bool
    code_ttl_seconds: int
    code_max_tries: int
    code_resend_seconds: int
    restricted_max_aal: int
    phone_refuse_voip: bool
    phone_countries: list[str]
    send_caps: dict[str, int]
    usual_countries: list[str]
    unusual_burst: int


class PortalLinkRequest(Request):
    """Optional: the body may also be left out."""

    return_url: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=2048,
                description="An http(s) URL of the application that the portal links back to",
            ),
        ]
        | None
    ) = None


class PortalLinkCreated(Struct):
    url: Annotated[str, Meta(description="Send the user's browser here; it works once")]
    expires_at: Timestamp


class ApiKeyCreated(Struct):
    key_id: UUID
    role: str
    label: str
    api_key: str


class Problem(Struct, omit_defaults=True):
    """RFC 9457 problem details; extension members appear at the top level."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    retry_after: int | None = None
    authentication_id: UUID | None = None
    errors: list[dict[str, Any]] | None = None


class Status(Struct):
    status: str


class JsonWebKey(Struct):
    kty: str
    kid: str
    n: str
    e: str
    use: str | None = None
    alg: str | None = None


class JsonWebKeySet(Struct):
    keys: list[JsonWebKey]


class AuditRecordView(Struct):
    """One audit record; `hash` chains it to the previous record of its organisation."""

    org_id: UUID
    seq: int
    position: int
    event_id: str
    at: Timestamp
    subject_id: UUID
    user_id: str | None
    actor_type: Literal["user", "application_key", "administrator", "system"]
    actor_id: str | None
    action: str
    outcome: Literal["success", "failure", "info"]
    method: str | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPageView(Struct):
    records: list[AuditRecordView]
    next_cursor: str | None


class ProjectionStatus(Struct):
    name: str
    mode: Literal["inline", "external"]
    position: int
    head: int
    lag: int


# --- analytics (ADR 11) ----------------------------------------------------------------------

Day = Annotated[date, Meta(description="A UTC day, YYYY-MM-DD")]
Rate = Annotated[float, Meta(ge=0, le=1)]


class EnrolmentDay(Struct):
    day: Day
    method: str
    started: int
    added: int
    removed: int


class EnrolmentSeries(Struct):
    """Per UTC day and method: enrolments started, made active (added) and revoked while
    active (removed). Days without any are left out."""

    series: list[EnrolmentDay]


class CoverageView(Struct):
    """Users seen (an account, enrolment or login) and how many have an active authenticator."""

    users: int
    with_authenticator: int
    with_phishing_resistant: int
    coverage: Rate | None
    phishing_resistant_coverage: Rate | None
    phishing_resistant_methods: list[str]


class AuthenticationDay(Struct):
    day: Day
    method: str
    attempts: int
    successes: int
    failures: int
    success_rate: Rate | None


class AuthenticationTotal(Struct):
    method: str
    attempts: int
    successes: int
    failures: int
    success_rate: Rate | None


class AuthenticationSeries(Struct):
    """Codes judged (attempts), failed, and logins satisfied, per UTC day and method."""

    series: list[AuthenticationDay]
    totals: list[AuthenticationTotal]


class LevelDay(Struct):
    day: Day
    level: str
    count: int


class RiskSeries(Struct):
    """Logins started per UTC day and assessed risk level."""

    series: list[LevelDay]


class OperationDay(Struct):
    day: Day
    operation: str
    count: int


class StepUpSeries(Struct):
    """Logins started for an operation (a step-up), per UTC day and operation."""

    series: list[OperationDay]


class SmsDeliveryDay(Struct):
    day: Day
    provider: str
    country: str
    delivered: int
    failed: int
    delivery_rate: Rate | None


class SmsDeliverySeries(Struct):
    """SMS delivery per day, provider and destination country (`available` is true)."""

    series: list[SmsDeliveryDay]
    available: bool
    note: str


class RecoveryDay(Struct):
    day: Day
    opened: int
    completed: int


class RecoverySeries(Struct):
    """Empty until account recovery is recorded as events (`available` is false until then)."""

    series: list[RecoveryDay]
    available: bool
    note: str


class AnalyticsChangeView(Struct):
    """One analytics row change: the row's key and its new value."""

    seq: int
    position: int
    org_id: UUID
    model: Literal["daily", "user"]
    key: dict[str, Any]
    value: dict[str, Any]


# --- webhooks (ADR 10) -----------------------------------------------------------------------

WebhookEvent = Literal[
    "enrolment.added", "enrolment.removed", "lockout", "risky_login", "recovery.opened"
]


class WebhookRequest(Request):
    url: Annotated[
        str,
        Meta(
            min_length=8,
            max_length=2048,
            pattern=r"^[hH][tT][tT][pP][sS]?://",
            description="An http or https URL with a host, no credentials and no fragment",
        ),
    ]
    events: Annotated[list[WebhookEvent], Meta(min_length=1, max_length=5)]
    description: Annotated[str, Meta(max_length=200)] | None = None


class WebhookCreated(Struct):
    webhook_id: UUID
    url: str
    events: list[str]
    description: str | None
    secret: Annotated[str, Meta(description="The signing secret; shown only in this answer")]


class WebhookView(Struct):
    webhook_id: UUID
    url: str
    events: list[str]
    description: str | None
    created_at: Timestamp


class WebhookDeliveryView(Struct):
    delivery_id: UUID
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    created_at: Timestamp
    next_attempt_at: Timestamp | None
    last_attempt_at: Timestamp | None
    last_status: int | None
    last_error: str | None
    delivered_at: Timestamp | None
