"""What every provider shares: its interface, its errors, and redaction of secrets from them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from adapters.messaging.templates import Rendered
from application.ports import OutboundCode

REDACTED = "[redacted]"
MAX_ERROR_LENGTH = 300


@dataclass(frozen=True, slots=True)
class Accepted:
    """The provider took the message; its own id, for status callbacks."""

    provider_message_id: str | None


class ProviderError(Exception):
    """A provider did not take a message. `reason` is short and safe to log: it never holds the
    code, a secret, a token or a key. `provider_fault` says whether the failure counts against
    the provider's health (timeouts, 5xx, bad credentials, throttling, malformed answers) or only
    against this message (a 4xx refusal such as an invalid number); the router fails over on
    both, and only provider faults open its circuit breaker."""

    def __init__(self, reason: str, *, provider_fault: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.provider_fault = provider_fault


class Provider(Protocol):
    """One way out: Twilio, Vonage, a signed webhook, SMTP or the console file."""

    @property
    def name(self) -> str: ...

    @property
    def channels(self) -> frozenset[str]:
        """The channels it can carry: some of "sms", "voice", "email"."""

    def send(self, message: OutboundCode, content: Rendered) -> Accepted:
        """Hand one message over; raises ProviderError when it is not taken."""


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret replaced and cut to a log-friendly length."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"


def timeout(connect: float, read: float) -> httpx.Timeout:
    return httpx.Timeout(read, connect=connect)


def http_client(*, connect_timeout: float, read_timeout: float, auth: Any = None) -> httpx.Client:
    """A pooled client with explicit timeouts, no redirects and no proxy from the environment."""
    return httpx.Client(
        timeout=timeout(connect_timeout, read_timeout),
        follow_redirects=False,
        trust_env=False,
        auth=auth,
    )


def post(client: httpx.Client, url: str, **kwargs: Any) -> httpx.Response:
    """POST, turning transport failures into provider faults (no URL or body in the reason)."""
    try:
        return client.post(url, **kwargs)
    except httpx.TimeoutException as error:
        raise ProviderError(f"timed out ({type(error).__name__})") from None
    except httpx.HTTPError as error:
        raise ProviderError(f"could not connect ({type(error).__name__})") from None


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The body as a JSON object, or a provider fault: a malformed answer means an unhealthy
    provider or something in between (a proxy's HTML error page)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ProviderError(f"HTTP {response.status_code} with a body that is not JSON") from None
    if not isinstance(body, dict):
        raise ProviderError(f"HTTP {response.status_code} with JSON that is not an object")
    return body


def status_fault(status: int) -> bool:
    """Whether an HTTP error status is the provider's problem rather than this message's."""
    return status >= 500 or status in (401, 403, 408, 429)
