"""Webhook POSTs over httpx: a short timeout, no redirects, errors as results."""

from __future__ import annotations

import httpx

from application.ports import WebhookResponse


class HttpxWebhookSender:
    """One pooled client; every network failure becomes a `WebhookResponse` with an error."""

    def __init__(self, *, timeout: float = 5.0) -> None:
        self._client = httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)

    def post(self, url: str, *, body: bytes, headers: dict[str, str]) -> WebhookResponse:
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return WebhookResponse(None, "the receiver did not answer in time")
        except httpx.HTTPError as error:
            return WebhookResponse(None, f"{type(error).__name__}: {error}"[:500])
        except ValueError as error:  # e.g. a URL httpx cannot use
            return WebhookResponse(None, f"the URL cannot be used: {error}"[:500])
        response.close()
        return WebhookResponse(response.status_code)

    def close(self) -> None:
        self._client.close()
