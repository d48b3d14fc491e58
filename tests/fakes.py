"""Fakes for ports: they record what happened and tests assert outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:  # a step boundary a little in the past, so real verifiers accept `iat`
            now = int(datetime.now(UTC).timestamp())
            start = datetime.fromtimestamp(now - now % 30 - 60 + 5, UTC)
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)

    def set_unix(self, timestamp: float) -> None:
        self.current = datetime.fromtimestamp(timestamp, UTC)


class FakeWebhookSender:
    """Records every POST and answers with `status` (no network)."""

    def __init__(self, status: int = 200) -> None:
        from application.ports import WebhookResponse

        self.status = status
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []
        self._response = WebhookResponse

    def post(self, url: str, *, body: bytes, headers: dict[str, str]):  # type: ignore[no-untyped-def]
        self.sent.append((url, body, dict(headers)))
        return self._response(self.status)
