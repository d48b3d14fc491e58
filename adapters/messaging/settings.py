"""Build the code sender and the callback verifier from environment variables (for the
composition root; see ADR 14 for the table)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from adapters.messaging.base import Provider
from adapters.messaging.callbacks import SignedDeliveryCallbacks
from adapters.messaging.console import ConsoleProvider
from adapters.messaging.routing import RoutedCodeSender, RoutingRule, rules_from_json
from adapters.messaging.smtp import SmtpEmailProvider
from adapters.messaging.templates import TemplateCatalogue, default_catalogue
from adapters.messaging.twilio import TWILIO_API, TwilioProvider
from adapters.messaging.vonage import VONAGE_SMS_API, VONAGE_VOICE_API, VonageProvider
from adapters.messaging.webhook import SignedWebhookProvider
from application.ports import Clock

KNOWN = ("console", "twilio", "vonage", "webhook", "smtp")


def _names(value: str) -> list[str]:
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise ValueError(f"unknown messaging providers {unknown}; known: {list(KNOWN)}")
    return names


def _need(env: Mapping[str, str], *keys: str) -> list[str]:
    missing = [k for k in keys if not env.get(k)]
    if missing:
        raise ValueError(f"missing settings: {', '.join(missing)}")
    return [env[k] for k in keys]


def _routes(env: Mapping[str, str]) -> list[RoutingRule]:
    value = env.get("TESSERA_MESSAGING_ROUTES", "").strip()
    if not value:
        return []
    if value.startswith("@"):
        value = Path(value[1:]).read_text("utf-8")
    return rules_from_json(value)


def _provider(name: str, env: Mapping[str, str], *, home: Path, clock: Clock) -> Provider:
    connect = float(env.get("TESSERA_MESSAGING_CONNECT_TIMEOUT", "3"))
    read = float(env.get("TESSERA_MESSAGING_READ_TIMEOUT", "10"))
    if name == "console":
        path = env.get("TESSERA_MESSAGES_FILE") or str(home / "messages.log")
        return ConsoleProvider(path, clock=clock)
    if name == "twilio":
        # an API key (SID and secret) signs requests in place of the account's auth token
        key_sid = env.get("TWILIO_API_KEY_SID")
        password_key = "TWILIO_API_KEY_SECRET" if key_sid else "TWILIO_AUTH_TOKEN"
        sid, password = _need(env, "TWILIO_ACCOUNT_SID", password_key)
        return TwilioProvider(
            account_sid=sid,
            auth_token=password,
            username=key_sid or None,
            from_number=env.get("TWILIO_FROM") or None,
            messaging_service_sid=env.get("TWILIO_MESSAGING_SERVICE_SID") or None,
            status_callback=env.get("TWILIO_STATUS_CALLBACK") or None,
            base_url=env.get("TWILIO_BASE_URL") or TWILIO_API,
            channels=frozenset({"sms", "voice"} if env.get("TWILIO_FROM") else {"sms"}),
            connect_timeout=connect,
            read_timeout=read,
        )
    if name == "vonage":
        key, secret, sender = _need(env, "VONAGE_API_KEY", "VONAGE_API_SECRET", "VONAGE_FROM")
        key_path = env.get("VONAGE_PRIVATE_KEY_PATH")
        return VonageProvider(
            api_key=key,
            api_secret=secret,
            from_=sender,
            voice_from=env.get("VONAGE_VOICE_FROM") or None,
            application_id=env.get("VONAGE_APPLICATION_ID") or None,
            private_key_pem=Path(key_path).read_bytes() if key_path else None,
            status_callback=env.get("VONAGE_STATUS_CALLBACK") or None,
            sms_base_url=env.get("VONAGE_SMS_BASE_URL") or VONAGE_SMS_API,
            voice_base_url=env.get("VONAGE_VOICE_BASE_URL") or VONAGE_VOICE_API,
            connect_timeout=connect,
            read_timeout=read,
        )
    if name == "webhook":
        url, secret = _need(env, "TESSERA_SMS_WEBHOOK_URL", "TESSERA_SMS_WEBHOOK_SECRET")
        return SignedWebhookProvider(
            url=url, secret=secret, connect_timeout=connect, read_timeout=read
        )
    host, sender = _need(env, "TESSERA_SMTP_HOST", "TESSERA_SMTP_SENDER")
    return SmtpEmailProvider(
        host=host,
        port=int(env.get("TESSERA_SMTP_PORT", "587")),
        sender=sender,
        security=env.get("TESSERA_SMTP_SECURITY", "starttls"),
        username=env.get("TESSERA_SMTP_USERNAME") or None,
        password=env.get("TESSERA_SMTP_PASSWORD") or None,
        timeout=read,
    )


def build_code_sender(
    env: Mapping[str, str],
    *,
    home: Path,
    clock: Clock,
    templates: TemplateCatalogue | None = None,
) -> RoutedCodeSender:
    """SMS and voice go through `TESSERA_SMS_PROVIDERS` (default `console`), email through
    `TESSERA_EMAIL_PROVIDERS` (default `console`), unless a rule in `TESSERA_MESSAGING_ROUTES`
    (JSON, or `@path` of a JSON file) says otherwise for a region, carrier or channel."""
    phone_order = _names(env.get("TESSERA_SMS_PROVIDERS", "console"))
    email_order = _names(env.get("TESSERA_EMAIL_PROVIDERS", "console"))
    routes = _routes(env)
    names = dict.fromkeys([*phone_order, *email_order, *(n for r in routes for n in r.providers)])
    providers = [_provider(name, env, home=home, clock=clock) for name in names]
    rules = [RoutingRule(tuple(email_order), channels=frozenset({"email"})), *routes]
    return RoutedCodeSender(
        providers,
        templates=templates or default_catalogue(),
        rules=rules,
        default_order=phone_order,
        failure_threshold=int(env.get("TESSERA_MESSAGING_BREAKER_FAILURES", "3")),
        cooldown_seconds=float(env.get("TESSERA_MESSAGING_BREAKER_COOLDOWN", "30")),
        webotp_domain=env.get("TESSERA_WEBOTP_DOMAIN") or None,
    )


def build_delivery_callbacks(env: Mapping[str, str], *, clock: Clock) -> SignedDeliveryCallbacks:
    """Verifies callbacks for the providers whose secrets are set."""
    webhook_secret = env.get("TESSERA_SMS_WEBHOOK_SECRET")
    return SignedDeliveryCallbacks(
        twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
        vonage_signature_secret=env.get("VONAGE_SIGNATURE_SECRET") or None,
        vonage_signature_method=env.get("VONAGE_SIGNATURE_METHOD", "sha256"),
        webhook_secrets={"webhook": webhook_secret} if webhook_secret else None,
        clock=clock,
    )
