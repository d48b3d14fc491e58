"""RFC 9457 problem details for every error, including validation and unknown routes."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from application.errors import (
    CeremonyRejectedError,
    ConflictError,
    ForbiddenError,
    InvalidCodeError,
    InvalidRequestError,
    NotFoundError,
    ThrottledError,
    UnauthorizedError,
)
from entrypoints.http.schemas import Problem

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("tessera.http")

#: status -> (problem type slug, title)
_KINDS: dict[int, tuple[str, str]] = {
    400: ("malformed-request", "The request could not be read"),
    401: ("unauthorized", "Authentication is required"),
    403: ("forbidden", "Not allowed for this API key"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "The resource is not in a state that allows this"),
    413: ("payload-too-large", "The request body is too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid-request", "The request is not valid"),
    429: ("too-many-attempts", "Too many attempts"),
    500: ("internal-error", "Internal error"),
    503: ("unavailable", "The service is not ready"),
}


def problem_type(slug: str) -> str:
    return f"urn:tessera:problem:{slug}"


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return (text[:1].upper() + text[1:] + ".") if text else ""


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response[Problem]:
    default_slug, default_title = _KINDS.get(status, ("error", HTTPStatus(status).phrase))
    body = Problem(
        type=problem_type(slug or default_slug),
        title=title or default_title,
        status=status,
        detail=_sentence(detail),
        **{k: v for k, v in extensions.items() if v is not None},
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation(exc: ValidationException) -> Response[Problem]:
    errors = [e for e in exc.extra if isinstance(e, dict)] if isinstance(exc.extra, list) else None
    messages = " ".join(str(e.get("message", "")) for e in errors or [])
    return problem_response(
        422,
        "The request does not match the schema: " + (messages or str(exc.detail)),
        errors=errors or None,
    )


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """Turn any exception into problem+json; unknown ones into a 500 that hides internals."""
    if isinstance(exc, ValidationException):
        return _validation(exc)
    if isinstance(exc, NotFoundError):
        return problem_response(404, f"No such {exc.kind} in this organisation.")
    if isinstance(exc, UnauthorizedError):
        return problem_response(401, str(exc), headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, ForbiddenError):
        return problem_response(403, str(exc))
    if isinstance(exc, InvalidCodeError):
        authentication_id = exc.authentication_id
        return problem_response(
            401,
            "The code is not valid.",
            slug="invalid-code",
            title="Verification failed",
            authentication_id=authentication_id,
        )
    if isinstance(exc, ThrottledError):
        detail = exc.detail or (
            "Too many failed attempts: verification is locked until an administrator unlocks it."
            if exc.locked
            else f"Too many failed attempts: try again in {exc.retry_after} seconds."
        )
        return problem_response(
            429,
            detail,
            slug="locked" if exc.locked else "too-many-attempts",
            headers={"Retry-After": str(exc.retry_after)},
            retry_after=exc.retry_after,
        )
    if isinstance(exc, ConflictError):
        return problem_response(409, str(exc))
    if isinstance(exc, CeremonyRejectedError):
        return problem_response(
            422, str(exc), slug="webauthn-rejected", title="The WebAuthn ceremony was refused"
        )
    if isinstance(exc, InvalidRequestError):
        return problem_response(422, str(exc))
    if isinstance(exc, HTTPException):
        status = exc.status_code
        detail = (
            exc.detail
            if exc.detail and exc.detail != HTTPStatus(status).phrase
            else (_KINDS.get(status, ("", HTTPStatus(status).phrase))[1])
        )
        headers = dict(exc.headers or {})
        return problem_response(status, str(detail), headers=headers or None)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(500, "An unexpected error occurred; it has been logged.")


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries documenting that a route may answer these statuses with a problem."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=_KINDS.get(status, ("", HTTPStatus(status).phrase))[1],
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for status in statuses
    }


#: Every authenticated JSON route can answer these.
COMMON = (400, 401, 413, 422, 500)
