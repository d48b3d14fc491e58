"""Twilio: the Messages API for SMS and the Calls API (inline TwiML) for voice."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

import httpx

from adapters.messaging.base import (
    Accepted,
    ProviderError,
    http_client,
    json_object,
    post,
    redact,
    status_fault,
)
from adapters.messaging.templates import Rendered, VoiceScript
from application.ports import OutboundCode

TWILIO_API = "https://api.twilio.com"
MAX_TWIML = 4000  # Twilio's limit for the Twiml parameter


def twiml(script: VoiceScript, *, pause_seconds: int = 1) -> str:
    """`<Response>` saying each sentence in the script's voice and language, with pauses."""
    say = (
        f"<Say voice={quoteattr(script.twilio_voice)} language={quoteattr(script.twilio_language)}>"
    )
    pause = f'<Pause length="{pause_seconds}"/>'
    parts = [pause]  # a moment for the callee to put the phone to their ear
    for sentence in script.sentences:
        parts += [say, escape(sentence), "</Say>", pause]
    return "<Response>" + "".join(parts) + "</Response>"


class TwilioProvider:
    """Twilio's REST API with HTTP Basic auth: the Account SID and `auth_token`, or an API key
    (`username=` its SID, `auth_token=` its secret). SMS go from `from_number` or through a
    Messaging Service."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        username: str | None = None,
        status_callback: str | None = None,
        base_url: str = TWILIO_API,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        name: str = "twilio",
        channels: frozenset[str] = frozenset({"sms", "voice"}),
    ) -> None:
        if not from_number and not messaging_service_sid:
            raise ValueError("Twilio needs a from number or a Messaging Service SID")
        if "voice" in channels and not from_number:
            raise ValueError("Twilio calls need a from number")
        self.name = name
        self.channels = channels
        self._account_sid = account_sid
        self._token = auth_token
        self._from = from_number
        self._service = messaging_service_sid
        self._callback = status_callback
        self._base = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}"
        self._client = http_client(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            auth=httpx.BasicAuth(username or account_sid, auth_token),
        )

    def send(self, message: OutboundCode, content: Rendered) -> Accepted:
        if message.channel == "voice":
            if content.voice is None:
                raise ProviderError("no voice script was rendered", provider_fault=False)
            document = twiml(content.voice)
            if len(document) > MAX_TWIML:
                raise ProviderError("the call script is too long for Twilio", provider_fault=False)
            form = {"To": message.to, "From": self._from or "", "Twiml": document}
            return self._create("Calls.json", form, message.code)
        if message.channel != "sms":
            raise ProviderError(f"Twilio does not send {message.channel}", provider_fault=False)
        form = {"To": message.to, "Body": content.text}
        if self._service:
            form["MessagingServiceSid"] = self._service
            # a code that arrives after it expired is useless: let Twilio drop it
            form["ValidityPeriod"] = str(max(60, min(message.ttl_minutes * 60, 36000)))
        else:
            form["From"] = self._from or ""
        return self._create("Messages.json", form, message.code)

    def _create(self, resource: str, form: dict[str, str], code: str) -> Accepted:
        if self._callback:
            form["StatusCallback"] = self._callback
        response = post(self._client, f"{self._base}/{resource}", data=form)
        if response.status_code >= 400:
            raise self._error(response, code)
        body = json_object(response)
        sid = body.get("sid")
        if not isinstance(sid, str) or not sid:
            raise ProviderError(f"HTTP {response.status_code} without a sid")
        return Accepted(sid)

    def _error(self, response: httpx.Response, code: str) -> ProviderError:
        fault = status_fault(response.status_code)
        try:
            body = json_object(response)
        except ProviderError:
            return ProviderError(f"HTTP {response.status_code}", provider_fault=fault)
        text = f"HTTP {response.status_code}"
        if body.get("code") is not None:
            text += f" error {body['code']}"
        if isinstance(body.get("message"), str):
            text += f": {body['message']}"
        secrets = (code, self._token, self._account_sid)
        return ProviderError(redact(text, secrets), provider_fault=fault)

    def close(self) -> None:
        self._client.close()
