"""A generic provider: a signed JSON POST to a URL the operator runs (their own SMS gateway)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from adapters.messaging.base import (
    Accepted,
    ProviderError,
    http_client,
    json_object,
    post,
    status_fault,
)
from adapters.messaging.templates import Rendered
from application.ports import OutboundCode
from application.webhooks import sign


class SignedWebhookProvider:
    """POSTs `{message_id, channel, to, text, locale}` as JSON with `Tessera-Signature:
    t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`, the scheme of Tessera's own
    webhooks (ADR 10), so receivers can reuse one verifier. Any 2xx means accepted; a JSON
    answer with a string `id` gives the provider's message id (else Tessera's is used)."""

    def __init__(
        self,
        *,
        url: str,
        secret: str,
        name: str = "webhook",
        channels: frozenset[str] = frozenset({"sms", "voice"}),
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("a webhook provider needs a signing secret")
        self.name = name
        self.channels = channels
        self._url = url
        self._secret = secret
        self._now = now
        self._client = http_client(connect_timeout=connect_timeout, read_timeout=read_timeout)

    def send(self, message: OutboundCode, content: Rendered) -> Accepted:
        body = json.dumps(
            {
                "message_id": message.message_id,
                "channel": message.channel,
                "to": message.to,
                "text": content.text,
                "locale": content.locale,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "Tessera-Signature": sign(self._secret, body, timestamp=int(self._now())),
        }
        response = post(self._client, self._url, content=body, headers=headers)
        if not 200 <= response.status_code < 300:
            raise ProviderError(
                f"HTTP {response.status_code}", provider_fault=status_fault(response.status_code)
            )
        if response.content.strip():
            answer = json_object(response)
            if isinstance(answer.get("id"), str) and answer["id"]:
                return Accepted(answer["id"])
        return Accepted(message.message_id)

    def close(self) -> None:
        self._client.close()
