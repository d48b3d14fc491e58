"""Helpers for HTTP tests: enrol a user and produce their codes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers import b32decode, hotp, totp


class Enrolled:
    def __init__(self, body: dict[str, Any], clock: Any) -> None:
        self.id = body["enrolment_id"]
        self.key = b32decode(body["secret"])
        self.body = body
        self._clock = clock

    def code(self, offset_steps: int = 0) -> str:
        return totp(
            self.key,
            self._clock.now() + __import__("datetime").timedelta(seconds=30 * offset_steps),
        )

    def hotp(self, counter: int) -> str:
        return hotp(self.key, counter)


@pytest.fixture
def enrol(client, headers, clock) -> Callable[..., Enrolled]:  # type: ignore[no-untyped-def]
    def _enrol(
        user_id: str = "alice",
        method: str = "totp",
        confirm: bool = True,
        hdrs: dict[str, str] | None = None,
    ) -> Enrolled:
        response = client.post(
            f"/v1/users/{user_id}/enrolments", json={"method": method}, headers=hdrs or headers
        )
        assert response.status_code == 201, response.text
        enrolled = Enrolled(response.json(), clock)
        if confirm:
            code = enrolled.code() if method == "totp" else enrolled.hotp(0)
            confirmed = client.post(
                f"/v1/enrolments/{enrolled.id}/confirm",
                json={"code": code},
                headers=hdrs or headers,
            )
            assert confirmed.status_code == 200, confirmed.text
            clock.advance(30)
        return enrolled

    return _enrol


def context() -> dict[str, str]:
    return {"ip": "198.51.100.7", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)"}
