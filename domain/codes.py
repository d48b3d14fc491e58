"""Out-of-band codes (SMS, voice, email): one code's life, shared by logins and enrolments.

A code is kept only as a keyed hash (computed outside the domain), bound to the session or
enrolment and channel it was sent for. It expires, takes a limited number of tries, is used at
most once, and a new code replaces the old one after a resend cool-down.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID


class CodeError(Exception):
    """Base class of the errors an out-of-band code raises."""


class NoCodeError(CodeError):
    """No code was sent, it was used, it expired, or it took all its tries: send a new one."""


class ResendTooSoonError(CodeError):
    """A new code was asked for within the cool-down after the last one."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"wait {retry_after} seconds before asking for another code")
        self.retry_after = retry_after


def issue_code(
    *,
    channel: str,
    enrolment_id: UUID,
    code_hash: str,
    delivery_id: UUID,
    ttl: timedelta,
    max_tries: int,
    cool_down: timedelta,
    at: datetime,
) -> dict[str, Any]:
    """The record of a new code, as events keep it (JSON values only, no code)."""
    return {
        "channel": channel,
        "enrolment_id": str(enrolment_id),
        "code_hash": code_hash,
        "delivery_id": str(delivery_id),
        "expires_at": at + ttl,
        "resend_after": at + cool_down,
        "tries_left": max_tries,
    }


def check_resend(current: dict[str, Any] | None, *, at: datetime) -> None:
    """Refuse a new code within the cool-down of the current one."""
    if current is not None and at < current["resend_after"]:
        wait = current["resend_after"] - at
        raise ResendTooSoonError(max(1, int(wait.total_seconds() + 0.999)))


def open_code(current: dict[str, Any] | None, *, at: datetime) -> dict[str, Any]:
    """The current code while it can still be tried."""
    if current is None or current["tries_left"] <= 0 or at >= current["expires_at"]:
        raise NoCodeError("no code is waiting: ask for a new one")
    return current


def missed(current: dict[str, Any]) -> dict[str, Any]:
    return {**current, "tries_left": current["tries_left"] - 1}
