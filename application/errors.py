"""Errors the use cases raise; the HTTP layer maps each to one problem type."""

from __future__ import annotations


class TesseraError(Exception):
    """Base class of application errors."""


class NotFoundError(TesseraError):
    """Unknown, or belonging to another organisation: the two look the same."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"{kind} not found")
        self.kind = kind


class UnauthorizedError(TesseraError):
    """The API key is missing, unknown or revoked."""


class ForbiddenError(TesseraError):
    """The caller is known but its role may not do this."""


class InvalidRequestError(TesseraError):
    """The request is well-formed but asks for something the rules refuse."""


class InvalidCodeError(TesseraError):
    """The code did not verify. Says nothing about whether the user or authenticator exists."""

    def __init__(self, message: str, *, authentication_id: object | None = None) -> None:
        super().__init__(message)
        self.authentication_id = authentication_id


class ThrottledError(TesseraError):
    """Too many failures: try again after `retry_after` seconds."""

    def __init__(
        self, retry_after: int, *, locked: bool = False, detail: str | None = None
    ) -> None:
        super().__init__("locked" if locked else "throttled")
        self.retry_after = max(1, retry_after)
        self.locked = locked
        self.detail = detail  # replaces the failed-attempts wording (send caps, cool-downs)


class ConflictError(TesseraError):
    """The resource is not in a state that allows this (closed session, confirmed enrolment)."""


class CeremonyRejectedError(TesseraError):
    """A WebAuthn registration or assertion did not verify; the session or enrolment is left
    as it was (its challenge still open)."""
