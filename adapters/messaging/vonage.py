"""Vonage: the SMS API (key and secret) and the Voice API (an application's RS256 JWT)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

from adapters.messaging.base import (
    Accepted,
    ProviderError,
    http_client,
    json_object,
    post,
    redact,
    status_fault,
)
from adapters.messaging.templates import Rendered
from application.ports import OutboundCode

VONAGE_SMS_API = "https://rest.nexmo.com"
VONAGE_VOICE_API = "https://api.nexmo.com"
JWT_LIFETIME_SECONDS = 900

# GSM 03.38: the basic set and the escape table. Anything else needs type=unicode (UCS-2).
GSM_7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà" + "\f^{}\\[~]|€"
)

# SMS API statuses that are the account's or Vonage's problem rather than the message's:
# throttled, internal error, invalid credentials, barred, quota exceeded, too many binds.
_PROVIDER_STATUSES = {"1", "4", "5", "8", "9", "11", "14", "101"}


def is_gsm7(text: str) -> bool:
    return all(c in GSM_7 for c in text)


def national_format(e164: str) -> str:
    """Vonage wants the number without `+` (international format, digits only)."""
    return e164.removeprefix("+")


class VonageProvider:
    """SMS through `POST /sms/json`; calls through `POST /v1/calls` with a talk action per
    sentence in the user's language. Voice needs `application_id` and its private key, and a
    number to call from (`voice_from`, else `from_`, which for SMS may be a sender name)."""

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        from_: str,
        voice_from: str | None = None,
        application_id: str | None = None,
        private_key_pem: str | bytes | None = None,
        status_callback: str | None = None,
        sms_base_url: str = VONAGE_SMS_API,
        voice_base_url: str = VONAGE_VOICE_API,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        now: Callable[[], float] = time.time,
        name: str = "vonage",
    ) -> None:
        self.name = name
        self._key = api_key
        self._secret = api_secret
        self._from = from_
        self._voice_from = voice_from or from_
        self._application_id = application_id
        self._private_key = RSAKey.import_key(private_key_pem) if private_key_pem else None
        if bool(application_id) != bool(self._private_key):
            raise ValueError("Vonage voice needs both an application id and its private key")
        self.channels = frozenset({"sms", "voice"} if self._private_key else {"sms"})
        self._callback = status_callback
        self._sms_url = f"{sms_base_url.rstrip('/')}/sms/json"
        self._voice_url = f"{voice_base_url.rstrip('/')}/v1/calls"
        self._now = now
        self._client = http_client(connect_timeout=connect_timeout, read_timeout=read_timeout)

    def send(self, message: OutboundCode, content: Rendered) -> Accepted:
        if message.channel == "sms":
            return self._sms(message, content.text)
        if message.channel == "voice" and self._private_key is not None:
            return self._call(message, content)
        raise ProviderError(f"Vonage is not set up for {message.channel}", provider_fault=False)

    def _secrets(self, message: OutboundCode) -> tuple[str, ...]:
        return (message.code, self._key, self._secret)

    def _sms(self, message: OutboundCode, text: str) -> Accepted:
        form = {
            "api_key": self._key,
            "api_secret": self._secret,
            "from": self._from,
            "to": national_format(message.to),
            "text": text,
            "client-ref": message.message_id[:100],
        }
        if not is_gsm7(text):
            form["type"] = "unicode"
        if self._callback:
            form["callback"] = self._callback
        response = post(self._client, self._sms_url, data=form)
        if response.status_code >= 400:
            raise ProviderError(
                f"HTTP {response.status_code}", provider_fault=status_fault(response.status_code)
            )
        body = json_object(response)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
            raise ProviderError(f"HTTP {response.status_code} without messages")
        first = messages[0]
        status = str(first.get("status", ""))
        if status != "0":
            reason = f"status {status or '?'}"
            if isinstance(first.get("error-text"), str):
                reason += f": {first['error-text']}"
            raise ProviderError(
                redact(reason, self._secrets(message)),
                provider_fault=status in _PROVIDER_STATUSES or not status,
            )
        message_id = first.get("message-id")
        if not isinstance(message_id, str) or not message_id:
            raise ProviderError("status 0 without a message-id")
        return Accepted(message_id)

    def application_jwt(self) -> str:
        """A short-lived RS256 JWT for the application, as Vonage's Voice API wants it."""
        assert self._private_key is not None
        issued = int(self._now())
        claims = {
            "application_id": self._application_id,
            "iat": issued,
            "nbf": issued - 30,
            "exp": issued + JWT_LIFETIME_SECONDS,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode({"alg": "RS256", "typ": "JWT"}, claims, self._private_key)

    def _call(self, message: OutboundCode, content: Rendered) -> Accepted:
        script = content.voice
        if script is None:
            raise ProviderError("no voice script was rendered", provider_fault=False)
        ncco: list[dict[str, object]] = [
            {"action": "talk", "text": sentence, "language": script.vonage_language}
            for sentence in script.sentences
        ]
        body: dict[str, object] = {
            "to": [{"type": "phone", "number": national_format(message.to)}],
            "from": {"type": "phone", "number": national_format(self._voice_from)},
            "ncco": ncco,
        }
        if self._callback:
            body["event_url"] = [self._callback]
        response = post(
            self._client,
            self._voice_url,
            json=body,
            headers={"Authorization": f"Bearer {self.application_jwt()}"},
        )
        if response.status_code >= 400:
            raise self._voice_error(response, message)
        answer = json_object(response)
        call_id = answer.get("uuid")
        if not isinstance(call_id, str) or not call_id:
            raise ProviderError(f"HTTP {response.status_code} without a call uuid")
        return Accepted(call_id)

    def _voice_error(self, response: httpx.Response, message: OutboundCode) -> ProviderError:
        fault = status_fault(response.status_code)
        text = f"HTTP {response.status_code}"
        try:
            body = json_object(response)
        except ProviderError:
            return ProviderError(text, provider_fault=fault)
        detail = body.get("title") or body.get("error_title")
        if isinstance(detail, str):
            text += f": {detail}"
        if isinstance(body.get("detail"), str):
            text += f" ({body['detail']})"
        return ProviderError(redact(text, self._secrets(message)), provider_fault=fault)

    def close(self) -> None:
        self._client.close()
