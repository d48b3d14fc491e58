"""The embedded default: messages appended to a local file instead of sent.

This is a delivery channel, not a log: the code is written into the file on purpose so that
`make run` and demos work with no SMS, voice or email account. The file is created 0600. Never
point production traffic at it (ADR 14)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from adapters.messaging.base import Accepted, ProviderError
from adapters.messaging.templates import Rendered
from adapters.system import SystemClock
from application.ports import Clock, OutboundCode


class ConsoleProvider:
    """One JSON line per message: time, channel, to, text (and subject for email), provider."""

    def __init__(
        self,
        path: str | Path,
        *,
        name: str = "console",
        channels: frozenset[str] = frozenset({"sms", "voice", "email"}),
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.channels = channels
        self.path = Path(path)
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()

    def send(self, message: OutboundCode, content: Rendered) -> Accepted:
        entry: dict[str, str] = {
            "time": self._clock.now().isoformat(),
            "channel": message.channel,
            "to": message.to,
            "text": content.text,
            "provider": self.name,
            "message_id": message.message_id,
            "locale": content.locale,
        }
        if content.email is not None:
            entry["subject"] = content.email.subject
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)  # one write per line: O_APPEND keeps processes apart
                finally:
                    os.close(fd)
        except OSError as error:
            raise ProviderError(f"cannot write the message file ({error.strerror})") from None
        return Accepted(message.message_id)
