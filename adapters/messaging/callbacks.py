"""`DeliveryCallbacks`: signed delivery-status callbacks from Twilio, Vonage and webhook
providers, verified in constant time before a field of them is read."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from adapters.system import SystemClock
from application.ports import Clock, DeliveryStatus, InvalidCallbackError
from application.webhooks import verify_signature

STATUSES = frozenset({"queued", "sent", "delivered", "failed", "undelivered"})
MAX_BODY = 64 * 1024

# Twilio's message statuses and call statuses, in the port's words.
TWILIO_STATUSES = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
    "initiated": "sent",
    "ringing": "sent",
    "in-progress": "sent",
    "answered": "sent",
    "completed": "delivered",
    "busy": "undelivered",
    "no-answer": "undelivered",
}

# Vonage SMS delivery receipt statuses.
VONAGE_STATUSES = {
    "accepted": "sent",
    "buffered": "sent",
    "unknown": "sent",
    "delivered": "delivered",
    "expired": "undelivered",
    "failed": "failed",
    "rejected": "failed",
}

VONAGE_METHODS = ("md5hash", "md5", "sha1", "sha256", "sha512")

# Vonage Voice API call events, in the port's words (the call reads the code out).
VONAGE_CALL_STATUSES = {
    "started": "sent",
    "ringing": "sent",
    "answered": "sent",
    "completed": "delivered",
    "busy": "undelivered",
    "timeout": "undelivered",
    "unanswered": "undelivered",
    "cancelled": "failed",
    "failed": "failed",
    "rejected": "failed",
}


def twilio_signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """Base64 HMAC-SHA1 of the URL followed by every parameter name and value, sorted by name
    (and, for a repeated name, by value), as Twilio signs its webhooks."""
    data = url
    names = sorted({name for name, _ in params})
    for name in names:
        for value in sorted({v for n, v in params if n == name}):
            data += name + value
    mac = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def vonage_signature(secret: str, params: Mapping[str, str], *, method: str = "sha256") -> str:
    """Vonage's signed-request scheme: `&name=value` for each parameter but `sig`, sorted by
    name, with `&` and `=` in values replaced by `_`; then the MD5 of that string followed by
    the secret (`md5hash`), or its HMAC keyed with the secret (`md5`, `sha1`, `sha256`,
    `sha512`). Lower-case hex."""
    if method not in VONAGE_METHODS:
        raise ValueError(f"the Vonage signature method must be one of {VONAGE_METHODS}")
    signed = "".join(
        f"&{name}={params[name].replace('&', '_').replace('=', '_')}"
        for name in sorted(params)
        if name != "sig"
    ).encode("utf-8")
    if method == "md5hash":
        return hashlib.md5(signed + secret.encode("utf-8"), usedforsecurity=False).hexdigest()
    return hmac.new(secret.encode("utf-8"), signed, method).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), "")


def _url_variants(url: str) -> list[str]:
    """The URL as given, and with its default port added or removed: proxies in front of
    Tessera and Twilio disagree about it, and Twilio's own libraries try both."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url]
    if default and parts.hostname:
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port is None:
            variants.append(urlunsplit(parts._replace(netloc=f"{host}:{default}")))
        elif parts.port == default:
            variants.append(urlunsplit(parts._replace(netloc=host)))
    return variants


def _form(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise InvalidCallbackError("the body is not a form") from None


class SignedDeliveryCallbacks:
    """Verifies and reads status callbacks; `provider` is the name the callback URL carries.

    - Twilio: `X-Twilio-Signature` over the full callback URL and the form parameters, keyed
      with the auth token. Message (MessageSid, MessageStatus) and call (CallSid, CallStatus)
      callbacks. Twilio signs no timestamp, so a replayed callback verifies: status updates
      must be idempotent (they are: the last one wins).
    - Vonage: SMS delivery receipts with the account's signature secret (`sig` and `timestamp`
      in the query string, form or JSON body); `sha256` HMAC by default, which must match the
      method chosen in the Vonage dashboard. `timestamp` must be within the tolerance. Voice
      call events carry `Authorization: Bearer <JWT>` (HS256, the same secret) whose
      `payload_hash` is the body's SHA-256.
    - Webhook providers (by name): `Tessera-Signature` as on Tessera's webhooks, JSON body
      `{"message_id", "status", "error_code"}`, timestamp within the tolerance.
    Anything that does not verify raises InvalidCallbackError, with no secret in it."""

    def __init__(
        self,
        *,
        twilio_auth_token: str | None = None,
        vonage_signature_secret: str | None = None,
        vonage_signature_method: str = "sha256",
        webhook_secrets: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        tolerance_seconds: int = 300,
        twilio_name: str = "twilio",
        vonage_name: str = "vonage",
    ) -> None:
        if vonage_signature_method not in VONAGE_METHODS:
            raise ValueError(f"the Vonage signature method must be one of {VONAGE_METHODS}")
        self._twilio = twilio_auth_token
        self._vonage = vonage_signature_secret
        self._vonage_method = vonage_signature_method
        self._webhooks = dict(webhook_secrets or {})
        self._clock = clock or SystemClock()
        self._tolerance = tolerance_seconds
        self._twilio_name = twilio_name
        self._vonage_name = vonage_name

    def parse(
        self, provider: str, *, url: str, headers: dict[str, str], body: bytes
    ) -> DeliveryStatus:
        if len(body) > MAX_BODY:
            raise InvalidCallbackError("the callback body is too large")
        if provider == self._twilio_name and self._twilio:
            return self._parse_twilio(self._twilio, url, headers, body)
        if provider == self._vonage_name and self._vonage:
            return self._parse_vonage(self._vonage, url, headers, body)
        if provider in self._webhooks:
            return self._parse_webhook(provider, self._webhooks[provider], headers, body)
        raise InvalidCallbackError(f"no callback verification is set up for {provider!r}")

    def _parse_twilio(
        self, token: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> DeliveryStatus:
        signature = _header(headers, "X-Twilio-Signature")
        if not signature:
            raise InvalidCallbackError("X-Twilio-Signature is missing")
        params = _form(body)
        if not any(
            hmac.compare_digest(
                twilio_signature(token, candidate, params).encode(), signature.encode()
            )
            for candidate in _url_variants(url)
        ):
            raise InvalidCallbackError("the Twilio signature does not verify")
        fields = dict(params)
        sid = fields.get("MessageSid") or fields.get("CallSid")
        raw = fields.get("MessageStatus") or fields.get("CallStatus") or ""
        status = TWILIO_STATUSES.get(raw.lower())
        if not sid or status is None:
            raise InvalidCallbackError("a Twilio callback without a known sid and status")
        error = fields.get("ErrorCode") or None
        return DeliveryStatus(self._twilio_name, sid, status, error)

    def _parse_vonage(
        self, secret: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> DeliveryStatus:
        scheme, _, token = _header(headers, "Authorization").partition(" ")
        if scheme.lower() == "bearer" and token:
            return self._parse_vonage_call(secret, token.strip(), body)
        params: dict[str, str] = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        if body.strip():
            if "json" in _header(headers, "Content-Type").lower():
                params |= self._json_params(body)
            else:
                params |= dict(_form(body))
        signature = params.get("sig", "")
        if not signature:
            raise InvalidCallbackError("the Vonage callback is not signed (no sig)")
        expected = vonage_signature(secret, params, method=self._vonage_method)
        if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
            raise InvalidCallbackError("the Vonage signature does not verify")
        timestamp = params.get("timestamp", "")
        now = self._clock.now().timestamp()
        if not timestamp.isdigit() or abs(now - int(timestamp)) > self._tolerance:
            raise InvalidCallbackError("the Vonage callback's timestamp is missing or stale")
        message_id = params.get("messageId") or params.get("message-id")
        status = VONAGE_STATUSES.get(params.get("status", "").lower())
        if not message_id or status is None:
            raise InvalidCallbackError("a Vonage receipt without a known messageId and status")
        error = params.get("err-code")
        return DeliveryStatus(
            self._vonage_name, message_id, status, None if error in (None, "", "0") else error
        )

    def _parse_vonage_call(self, secret: str, token: str, body: bytes) -> DeliveryStatus:
        """A Voice API event: a JWT signed HS256 with the signature secret whose `payload_hash`
        is the SHA-256 of the body, and a JSON body naming the call and its status."""
        try:
            decoded = jwt.decode(token, OctKey.import_key(secret), algorithms=["HS256"])
        except JoseError:
            raise InvalidCallbackError("the Vonage event's JWT does not verify") from None
        claims = decoded.claims
        issued = claims.get("iat")
        now = self._clock.now().timestamp()
        if not isinstance(issued, int | float) or abs(now - issued) > self._tolerance:
            raise InvalidCallbackError("the Vonage event's JWT is missing iat or is stale")
        expected = hashlib.sha256(body).hexdigest()
        if not hmac.compare_digest(str(claims.get("payload_hash", "")).encode(), expected.encode()):
            raise InvalidCallbackError("the Vonage event's body is not the one signed")
        event = self._json_params(body)
        call_id = event.get("uuid")
        status = VONAGE_CALL_STATUSES.get(event.get("status", "").lower())
        if not call_id or status is None:
            raise InvalidCallbackError("a Vonage call event without a known uuid and status")
        return DeliveryStatus(self._vonage_name, call_id, status, None)

    @staticmethod
    def _json_params(body: bytes) -> dict[str, str]:
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidCallbackError("the body is not JSON") from None
        if not isinstance(data, dict):
            raise InvalidCallbackError("the body is not a JSON object")
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}

    def _parse_webhook(
        self, provider: str, secret: str, headers: Mapping[str, str], body: bytes
    ) -> DeliveryStatus:
        header = _header(headers, "Tessera-Signature")
        now = self._clock.now()
        if not header or not verify_signature(
            secret, header, body, now=now, tolerance=self._tolerance
        ):
            raise InvalidCallbackError("the Tessera-Signature does not verify (or is stale)")
        try:
            data: Any = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidCallbackError("the body is not JSON") from None
        if not isinstance(data, dict):
            raise InvalidCallbackError("the body is not a JSON object")
        message_id, status, error = (
            data.get("message_id"),
            data.get("status"),
            data.get("error_code"),
        )
        if not isinstance(message_id, str) or not message_id or status not in STATUSES:
            raise InvalidCallbackError("a callback without a message_id and a known status")
        if error is not None and not isinstance(error, str | int):
            raise InvalidCallbackError("error_code must be a string")
        return DeliveryStatus(
            provider, message_id, str(status), None if error is None else str(error)
        )
