"""The composition root: the only module that names concrete adapters."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from dependency_injector import containers, providers

from adapters.admin_sessions import session_store_for
from adapters.code_hash import HmacCodeHasher
from adapters.event_reader import FastEventReader
from adapters.mds_store import StoredMetadata
from adapters.messaging.phones import PhonenumbersParser
from adapters.messaging.settings import build_code_sender, build_delivery_callbacks
from adapters.messaging.templates import default_catalogue
from adapters.otp import PyOtpVerifier, SegnoProvisioner
from adapters.passwords import Argon2PasswordHasher
from adapters.persistence import Database
from adapters.risk import RuleBasedRiskAssessor
from adapters.send_counters import SqlSendCounters
from adapters.system import CsprngSecrets, RandomIds, SystemClock
from adapters.tokens import JoseTokenIssuer, SigningKeyRing
from adapters.vault import EnvelopeVault, KeyRing
from adapters.webauthn import PyWebAuthnCeremonies
from adapters.webhook_http import HttpxWebhookSender
from application.administrators import (
    AdminSessions,
    AppointAdministrator,
    EnrolAdministrator,
    HoldsAdminRole,
    RemoveAdministrator,
    SignInAdministrator,
    StartAdministratorEnrolment,
)
from application.analytics import AnalyticsProjection, AnalyticsView, ReadAnalytics
from application.audit import AuditTrailProjection, AuditTrailView, ReadAuditTrail
from application.authentications import (
    GetAuthentication,
    StartAuthentication,
    VerifyAuthentication,
)
from application.codes import (
    ConfirmCodeEnrolment,
    Messaging,
    RecordDeliveryStatus,
    ResendEnrolmentCode,
    SendLoginCode,
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
from application.identity import IdentityApplication
from application.organisations import (
    AuthenticateApiKey,
    ChangePolicy,
    CreateOrganisation,
    EraseUser,
    GetPolicy,
    IssueApiKey,
)
from application.otp import CodeChecker
from application.portal import (
    ConfirmAppSetup,
    ConfirmKeySetup,
    EndPortalSession,
    FinishKeyVerification,
    IssuePortalLink,
    RedeemPortalLink,
    RemoveAuthenticator,
    RenameAuthenticator,
    ResumePortalSession,
    ShowAppSetup,
    ShowAuthenticator,
    ShowPortal,
    StartAppSetup,
    StartKeySetup,
    StartKeyVerification,
    VerifyWithCode,
)
from application.ports import RelyingParty
from application.projections import ProjectionFollower
from application.webauthn import (
    ConfirmWebAuthnEnrolment,
    KeyVerifier,
    RecheckCredentials,
    StartWebAuthnEnrolment,
    VerifyWebAuthn,
    WebAuthnLoginOptions,
    WebAuthnSettings,
)
from application.webhooks import (
    CreateWebhook,
    DeleteWebhook,
    ReadWebhooks,
    WebhookDispatcher,
    WebhookOutboxProjection,
    WebhookOutboxView,
)
from entrypoints.config import Settings
from entrypoints.metrics import MeteredVerifier, Metrics


def _database(settings: Settings) -> Database:
    database = Database.from_url(settings.database_url)
    database.prepare()
    return database


def _identity_app(settings: Settings, database: Database) -> IdentityApplication:
    env = database.eventsourcing_env(
        create_tables=settings.create_tables, pool_size=settings.pool_size
    )
    return IdentityApplication(env=env)


def _key_ring(settings: Settings) -> KeyRing:
    return KeyRing(path=settings.keys_dir / "kek.json", environment_value=settings.kek)


def _signing_ring(settings: Settings) -> SigningKeyRing:
    return SigningKeyRing(
        settings.keys_dir / "signing.json",
        retention=timedelta(seconds=settings.token_key_retention_seconds),
        pem=settings.signing_key_pem,
    )


def _code_sender(settings: Settings, clock: SystemClock, templates: Any) -> Any:
    env = dict(os.environ)
    base = settings.issuer.rstrip("/")  # the public URL providers call back (signed)
    env.setdefault("TWILIO_STATUS_CALLBACK", f"{base}/v1/providers/twilio/status")
    env.setdefault("VONAGE_STATUS_CALLBACK", f"{base}/v1/providers/vonage/status")
    return build_code_sender(env, home=settings.home, clock=clock, templates=templates)


def _delivery_callbacks(clock: SystemClock) -> Any:
    return build_delivery_callbacks(os.environ, clock=clock)


def _send_counters(settings: Settings, database: Database) -> SqlSendCounters:
    return SqlSendCounters(database, create_table=settings.create_tables, pool_size=2)


def _webauthn_settings(settings: Settings) -> WebAuthnSettings:
    return WebAuthnSettings(
        rp=RelyingParty(rp_id=settings.rp_id, name="Tessera", origins=settings.origins)
    )


def _audit_view(settings: Settings, database: Database) -> AuditTrailView:
    return database.audit_view(create_tables=settings.create_tables)


def _analytics_view(settings: Settings, database: Database) -> AnalyticsView:
    return database.analytics_view(create_tables=settings.create_tables)


def _read_analytics(
    settings: Settings, database: Database, view: AnalyticsView, follower: ProjectionFollower
) -> ReadAnalytics:
    inline = settings.projections_inline(database.kind)
    return ReadAnalytics(view=view, catch_up=follower.catch_up if inline else None)


def _webhook_outbox(settings: Settings, database: Database) -> WebhookOutboxView:
    return database.webhook_outbox(create_tables=settings.create_tables)


def _read_webhooks(
    settings: Settings,
    database: Database,
    app: IdentityApplication,
    view: WebhookOutboxView,
    follower: ProjectionFollower,
) -> ReadWebhooks:
    inline = settings.projections_inline(database.kind)
    return ReadWebhooks(app=app, view=view, catch_up=follower.catch_up if inline else None)


def _read_audit_trail(
    settings: Settings, database: Database, view: AuditTrailView, follower: ProjectionFollower
) -> ReadAuditTrail:
    inline = settings.projections_inline(database.kind)
    return ReadAuditTrail(view=view, catch_up=follower.catch_up if inline else None)


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    database = providers.Singleton(_database, settings)
    identity_app = providers.Singleton(_identity_app, settings, database)
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(RandomIds)
    secrets = providers.Singleton(CsprngSecrets)
    key_ring = providers.Singleton(_key_ring, settings)
    data_keys = providers.Singleton(lambda db: db.data_key_store(), database)
    vault = providers.Singleton(EnvelopeVault, key_ring, data_keys)
    otp = providers.Singleton(PyOtpVerifier)
    provisioner = providers.Singleton(SegnoProvisioner)
    risk = providers.Singleton(RuleBasedRiskAssessor)
    signing_keys = providers.Singleton(_signing_ring, settings)
    tokens = providers.Singleton(
        JoseTokenIssuer, signing_keys, issuer=providers.Callable(lambda s: s.issuer, settings)
    )

    checker = providers.Singleton(CodeChecker, vault=vault, otp=otp)
    code_hasher = providers.Singleton(HmacCodeHasher, key_ring)
    metrics = providers.Singleton(Metrics)  # this process's Prometheus registry (ADR 11)
    verifier = providers.Singleton(
        MeteredVerifier,
        app=identity_app,
        checker=checker,
        tokens=tokens,
        ids=ids,
        hasher=code_hasher,
        metrics=metrics,
    )

    # SMS, voice and email codes (ADR 14, 17)
    templates = providers.Singleton(default_catalogue)
    code_sender = providers.Singleton(_code_sender, settings, clock, templates)
    send_counters = providers.Singleton(_send_counters, settings, database)
    messaging = providers.Singleton(
        Messaging,
        app=identity_app,
        phones=providers.Singleton(PhonenumbersParser),
        sender=code_sender,
        locales=templates,
        counters=send_counters,
        hasher=code_hasher,
        vault=vault,
        secrets=secrets,
        ids=ids,
        clock=clock,
    )
    start_code_enrolment = providers.Singleton(StartCodeEnrolment, messaging=messaging)
    resend_enrolment_code = providers.Singleton(ResendEnrolmentCode, messaging=messaging)
    send_login_code = providers.Singleton(SendLoginCode, messaging=messaging)
    confirm_code_enrolment = providers.Singleton(ConfirmCodeEnrolment, messaging=messaging)
    record_delivery_status = providers.Singleton(
        RecordDeliveryStatus,
        app=identity_app,
        callbacks=providers.Singleton(_delivery_callbacks, clock),
        clock=clock,
        public_url=providers.Callable(lambda s: s.issuer, settings),
    )

    authenticate_api_key = providers.Singleton(AuthenticateApiKey, app=identity_app)
    create_organisation = providers.Singleton(
        CreateOrganisation, app=identity_app, ids=ids, secrets=secrets, clock=clock
    )
    issue_api_key = providers.Singleton(IssueApiKey, app=identity_app, secrets=secrets, clock=clock)
    get_policy = providers.Singleton(GetPolicy, app=identity_app)
    change_policy = providers.Singleton(ChangePolicy, app=identity_app, clock=clock)
    erase_user = providers.Singleton(EraseUser, app=identity_app, vault=vault, clock=clock)

    start_enrolment = providers.Singleton(
        StartOtpEnrolment,
        app=identity_app,
        vault=vault,
        secrets=secrets,
        ids=ids,
        clock=clock,
        provisioner=provisioner,
    )
    confirm_enrolment = providers.Singleton(
        ConfirmOtpEnrolment,
        app=identity_app,
        checker=checker,
        clock=clock,
        sent_codes=confirm_code_enrolment,
    )
    list_enrolments = providers.Singleton(ListEnrolments, app=identity_app)
    revoke_enrolment = providers.Singleton(RevokeEnrolment, app=identity_app, clock=clock)
    unlock_enrolment = providers.Singleton(UnlockEnrolment, app=identity_app, clock=clock)
    resynchronise_hotp = providers.Singleton(
        ResynchroniseHotp, app=identity_app, checker=checker, otp=otp, vault=vault, clock=clock
    )

    start_authentication = providers.Singleton(
        StartAuthentication, app=identity_app, risk=risk, verifier=verifier, ids=ids, clock=clock
    )
    verify_authentication = providers.Singleton(
        VerifyAuthentication, app=identity_app, verifier=verifier, clock=clock
    )
    get_authentication = providers.Singleton(GetAuthentication, app=identity_app, clock=clock)

    # WebAuthn (ADR 13, 15)
    webauthn_settings = providers.Singleton(_webauthn_settings, settings)
    ceremonies = providers.Singleton(PyWebAuthnCeremonies)
    authenticator_metadata = providers.Singleton(
        StoredMetadata,
        providers.Callable(lambda s: s.mds_blob, settings),
        providers.Callable(lambda s: s.mds_root, settings),
    )
    start_webauthn_enrolment = providers.Singleton(
        StartWebAuthnEnrolment,
        app=identity_app,
        ceremonies=ceremonies,
        settings=webauthn_settings,
        secrets=secrets,
        ids=ids,
        clock=clock,
    )
    confirm_webauthn_enrolment = providers.Singleton(
        ConfirmWebAuthnEnrolment,
        app=identity_app,
        ceremonies=ceremonies,
        metadata=authenticator_metadata,
        settings=webauthn_settings,
        clock=clock,
    )
    webauthn_login_options = providers.Singleton(
        WebAuthnLoginOptions,
        app=identity_app,
        ceremonies=ceremonies,
        settings=webauthn_settings,
        secrets=secrets,
        clock=clock,
    )
    key_verifier = providers.Singleton(
        KeyVerifier,
        app=identity_app,
        ceremonies=ceremonies,
        settings=webauthn_settings,
        verifier=verifier,
    )
    verify_webauthn = providers.Singleton(
        VerifyWebAuthn, app=identity_app, key_verifier=key_verifier, clock=clock
    )
    recheck_credentials = providers.Singleton(
        RecheckCredentials, app=identity_app, metadata=authenticator_metadata, clock=clock
    )

    # the self-service portal (ADR 16)
    issue_portal_link = providers.Singleton(
        IssuePortalLink,
        app=identity_app,
        secrets=secrets,
        clock=clock,
        base_url=providers.Callable(lambda s: s.issuer, settings),
    )
    redeem_portal_link = providers.Singleton(
        RedeemPortalLink, app=identity_app, secrets=secrets, clock=clock
    )
    resume_portal_session = providers.Singleton(ResumePortalSession, app=identity_app, clock=clock)
    end_portal_session = providers.Singleton(EndPortalSession, app=identity_app, clock=clock)
    show_portal = providers.Singleton(ShowPortal, app=identity_app, clock=clock)
    show_authenticator = providers.Singleton(ShowAuthenticator, app=identity_app)
    verify_with_code = providers.Singleton(
        VerifyWithCode, app=identity_app, start_authentication=start_authentication, clock=clock
    )
    start_key_verification = providers.Singleton(
        StartKeyVerification,
        app=identity_app,
        start_authentication=start_authentication,
        login_options=webauthn_login_options,
    )
    finish_key_verification = providers.Singleton(
        FinishKeyVerification, app=identity_app, verify_webauthn=verify_webauthn, clock=clock
    )
    start_app_setup = providers.Singleton(
        StartAppSetup, app=identity_app, start_enrolment=start_enrolment, clock=clock
    )
    show_app_setup = providers.Singleton(
        ShowAppSetup, app=identity_app, vault=vault, provisioner=provisioner
    )
    confirm_app_setup = providers.Singleton(
        ConfirmAppSetup, app=identity_app, confirm_enrolment=confirm_enrolment
    )
    start_key_setup = providers.Singleton(
        StartKeySetup,
        app=identity_app,
        start_webauthn_enrolment=start_webauthn_enrolment,
        clock=clock,
    )
    confirm_key_setup = providers.Singleton(
        ConfirmKeySetup, app=identity_app, confirm_webauthn_enrolment=confirm_webauthn_enrolment
    )
    rename_authenticator = providers.Singleton(RenameAuthenticator, app=identity_app, clock=clock)
    remove_authenticator = providers.Singleton(
        RemoveAuthenticator, app=identity_app, revoke_enrolment=revoke_enrolment, clock=clock
    )

    event_reader = providers.Singleton(FastEventReader, identity_app)
    audit_view = providers.Singleton(_audit_view, settings, database)
    audit_projection = providers.Singleton(AuditTrailProjection, audit_view)
    audit_follower = providers.Singleton(
        ProjectionFollower, identity_app, audit_projection, reader=event_reader
    )
    read_audit_trail = providers.Singleton(
        _read_audit_trail, settings, database, audit_view, audit_follower
    )
    analytics_view = providers.Singleton(_analytics_view, settings, database)
    analytics_projection = providers.Singleton(AnalyticsProjection, analytics_view)
    analytics_follower = providers.Singleton(
        ProjectionFollower, identity_app, analytics_projection, reader=event_reader
    )
    read_analytics = providers.Singleton(
        _read_analytics, settings, database, analytics_view, analytics_follower
    )
    webhook_outbox = providers.Singleton(_webhook_outbox, settings, database)
    webhook_projection = providers.Singleton(WebhookOutboxProjection, webhook_outbox)
    webhook_follower = providers.Singleton(
        ProjectionFollower, identity_app, webhook_projection, reader=event_reader
    )
    webhook_allowed_hosts = providers.Callable(lambda s: s.webhook_allowed_hosts, settings)
    webhook_sender = providers.Singleton(HttpxWebhookSender, timeout=5.0)
    webhook_dispatcher = providers.Singleton(
        WebhookDispatcher,
        view=webhook_outbox,
        sender=webhook_sender,
        vault=vault,
        clock=clock,
        allowed_hosts=webhook_allowed_hosts,
    )
    create_webhook = providers.Singleton(
        CreateWebhook,
        app=identity_app,
        vault=vault,
        secrets=secrets,
        ids=ids,
        clock=clock,
        allowed_hosts=webhook_allowed_hosts,
    )
    delete_webhook = providers.Singleton(DeleteWebhook, app=identity_app, clock=clock)
    read_webhooks = providers.Singleton(
        _read_webhooks, settings, database, identity_app, webhook_outbox, webhook_follower
    )
    # the admin area (ADR 12)
    passwords = providers.Singleton(Argon2PasswordHasher)
    admin_session_store = providers.Singleton(session_store_for, database)  # shared by workers
    admin_sessions = providers.Singleton(
        AdminSessions,
        store=admin_session_store,
        secrets=secrets,
        clock=clock,
        holds_role=providers.Singleton(HoldsAdminRole, app=identity_app),
    )
    remove_administrator = providers.Singleton(
        RemoveAdministrator, app=identity_app, sessions=admin_sessions, clock=clock
    )
    appoint_administrator = providers.Singleton(
        AppointAdministrator, app=identity_app, secrets=secrets, clock=clock
    )
    start_administrator_enrolment = providers.Singleton(
        StartAdministratorEnrolment, app=identity_app, start_enrolment=start_enrolment, clock=clock
    )
    enrol_administrator = providers.Singleton(
        EnrolAdministrator,
        app=identity_app,
        confirm_enrolment=confirm_enrolment,
        hasher=passwords,
        vault=vault,
        clock=clock,
    )
    sign_in_administrator = providers.Singleton(
        SignInAdministrator,
        app=identity_app,
        checker=checker,
        hasher=passwords,
        vault=vault,
        start_authentication=start_authentication,
        clock=clock,
    )
    #: every projection, in the order `projections run` and the inline thread feed them
    projection_followers = providers.List(audit_follower, analytics_follower, webhook_follower)
    projection_status = providers.Callable(
        lambda s, db, fs: (s.projections_inline(db.kind), fs),
        settings,
        database,
        projection_followers,
    )


def build_container(settings: Settings | None = None) -> Container:
    container = Container(settings=settings or Settings.from_env())
    return container
