"""The self-service portal (ADR 16): the link API, the pages, their JSON calls and static files."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.openapi.spec import Operation, RequestBody
from litestar.params import FromPath, FromQuery, JSONBody, URLEncodedBody
from litestar.response import Redirect, Template
from litestar.router import Router
from litestar.static_files import create_static_files_router
from msgspec import Meta

from application.administrators import csrf_matches
from application.errors import (
    CeremonyRejectedError,
    ConflictError,
    ForbiddenError,
    InvalidCodeError,
    InvalidRequestError,
    NotFoundError,
    ThrottledError,
)
from application.organisations import Principal
from application.portal import (
    KEY_KINDS,
    AuthenticatorView,
    PortalOverview,
    PortalVisit,
    VerificationRequiredError,
)
from application.ports import RequestContext, SecretUnavailableError
from domain.portal import ABSOLUTE_TIMEOUT, PortalLinkError
from entrypoints.http.api import UserIdPath, principal_from
from entrypoints.http.bodies import check_body
from entrypoints.http.problems import COMMON, PROBLEM_JSON, problem_type, problems
from entrypoints.http.schemas import PortalLinkCreated, PortalLinkRequest

log = logging.getLogger("tessera.portal")

SESSION_COOKIE = "__Host-tessera-portal"
CSRF_HEADER = "x-csrf-token"
STATIC_DIR = Path(__file__).parent / "static" / "portal"

#: Use cases the portal's handlers take as dependencies (registered by `create_app`).
PORTAL_DEPENDENCIES = (
    "issue_portal_link",
    "redeem_portal_link",
    "resume_portal_session",
    "end_portal_session",
    "show_portal",
    "show_authenticator",
    "verify_with_code",
    "start_key_verification",
    "finish_key_verification",
    "start_app_setup",
    "show_app_setup",
    "confirm_app_setup",
    "start_key_setup",
    "confirm_key_setup",
    "rename_authenticator",
    "remove_authenticator",
)

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the start link carries its token in the query
    "Cross-Origin-Opener-Policy": "same-origin",
}
NOTICES = {
    "added": "Authenticator added. You can use it from your next sign-in.",
    "removed": "Authenticator removed. It no longer works for signing in.",
    "renamed": "Name saved.",
}
KEY_PAGES = {
    "security-key": {
        "title": "Add a security key",
        "intro": "Have your security key ready. When your browser asks, insert it or hold it "
        "near your phone, and touch it.",
        "example": "Blue YubiKey",
        "button": "Register security key",
    },
    "passkey": {
        "title": "Add a passkey",
        "intro": "A passkey lets you sign in with your fingerprint, face or screen lock, without "
        "typing your user name. Your browser or phone keeps it, and may sync it across your "
        "devices.",
        "example": "My phone",
        "button": "Create passkey",
    },
    "platform": {
        "title": "Add this device's biometrics",
        "intro": "Use this device's fingerprint reader, face recognition or screen lock (Touch "
        "ID, Face ID, Windows Hello, Android) to confirm it's you. It works on this device only.",
        "example": "Work laptop",
        "button": "Use this device",
    },
}
_NEXT = re.compile(r"/portal(/[A-Za-z0-9/-]*)?")

Dep = NamedDependency[Any]
Form = URLEncodedBody[dict[str, str]]


# --- shared helpers ------------------------------------------------------------------------


def _secure(response: Response[Any]) -> Response[Any]:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _page(template: str, status: int = 200, **context: Any) -> Template:
    context.setdefault("visit", None)
    return Template(template_name=f"portal/{template}.html", context=context, status_code=status)


def _message(status: int, title: str, message: str, **context: Any) -> Template:
    return _page("message", status, title=title, message=message, **context)


def _ended() -> Response[Any]:
    response = _message(
        401,
        "Your session has ended",
        "For your security, the portal signs you out after 15 minutes without activity, after "
        "an hour, or when you sign out. Open it again from your application.",
    )
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _forbidden(visit: PortalVisit | None) -> Template:
    return _message(
        403,
        "Request refused",
        "The form had expired or did not come from this site. Reload the page and try again.",
        visit=visit,
    )


def _context(request: Request[Any, Any, Any]) -> RequestContext:
    ip = request.client.host if request.client else "unknown"
    return RequestContext(ip=ip, user_agent=request.headers.get("user-agent", "")[:512])


def _safe_next(value: str | None) -> str:
    """Only a portal path: never an open redirect."""
    return value if value and _NEXT.fullmatch(value) else "/portal"


def _to_verify(next_path: str) -> Response[Any]:
    return Redirect(f"/portal/verify?next={quote(next_path, safe='/')}", status_code=303)


def _resume(request: Request[Any, Any, Any], resume_portal_session: Any) -> PortalVisit | None:
    visit: PortalVisit | None = resume_portal_session(
        session_token=request.cookies.get(SESSION_COOKIE)
    )
    return visit


class _SessionEnded(Exception):
    """No live portal session: the page says so and drops the cookie."""


class _FormRefused(Exception):
    """A form without this session's CSRF token."""

    def __init__(self, visit: PortalVisit) -> None:
        super().__init__("the form's CSRF token does not match")
        self.visit = visit


def _signed_in(request: Request[Any, Any, Any], resume_portal_session: Any) -> PortalVisit:
    """The live session; raises _SessionEnded (a 401 page) otherwise."""
    visit = _resume(request, resume_portal_session)
    if visit is None:
        raise _SessionEnded
    return visit


def _check_form(visit: PortalVisit, data: dict[str, str]) -> None:
    if not csrf_matches(visit.csrf_token, data.get("csrf_token")):
        raise _FormRefused(visit)


def _session_ended(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _secure(_ended())


def _form_refused(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, _FormRefused)
    return _secure(_forbidden(exc.visit))


def _when(at: datetime | None) -> str:
    if at is None:
        return ""
    return at.astimezone(UTC).strftime("%d %b %Y, %H:%M UTC").lstrip("0")


def _iso(at: datetime | None) -> str:
    return "" if at is None else at.astimezone(UTC).isoformat(timespec="seconds")


def _row(view: AuthenticatorView) -> dict[str, Any]:
    return {
        "id": view.enrolment_id,
        "name": view.name,
        "kind": view.kind,
        "kind_label": view.kind_label,
        "status": view.status,
        "status_label": view.status_label,
        "created": _when(view.created_at),
        "created_iso": _iso(view.created_at),
        "last_used": _when(view.last_used_at),
        "last_used_iso": _iso(view.last_used_at),
        "notice": view.notice,
        "model": view.model,
        "synced": view.synced,
        "started_here": view.started_here,
    }


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return (text[:1].upper() + text[1:] + ".") if text else ""


def _explain(exc: Exception) -> tuple[int, str, str]:
    """Status, title and a person-readable message for an error shown on a page."""
    if isinstance(exc, NotFoundError):
        return 404, "Not found", "This authenticator does not exist or was already removed."
    if isinstance(exc, InvalidCodeError):
        return (
            401,
            "Code not accepted",
            "The code was not accepted. Enter the code your app shows now (each code works once).",
        )
    if isinstance(exc, ThrottledError):
        if exc.locked:
            message = "Too many wrong codes: this is locked until your administrator unlocks it."
        else:
            message = f"Too many wrong codes. Try again in {exc.retry_after} seconds."
        return 429, "Too many attempts", message
    if isinstance(exc, VerificationRequiredError):
        return 403, "Confirm it's you first", _sentence(str(exc))
    if isinstance(exc, ConflictError):
        return 409, "Not possible now", _sentence(str(exc))
    if isinstance(exc, CeremonyRejectedError):
        return 422, "The authenticator was refused", _sentence(str(exc))
    if isinstance(exc, InvalidRequestError | ForbiddenError):
        return 422, "Not possible", _sentence(str(exc))
    if isinstance(exc, SecretUnavailableError):
        return 410, "Setup expired", "This setup can no longer be finished. Start again."
    if isinstance(exc, HTTPException):
        status = exc.status_code
        return status, HTTPStatus(status).phrase, "The page could not be shown."
    return 500, "Something went wrong", "An unexpected error occurred; it has been logged."


def _page_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status, title, message = _explain(exc)
    if status == 500:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _secure(_message(status, title, message))


# --- the link API (for applications) -------------------------------------------------------


async def principal_then_optional_body(
    request: Request[Any, Any, Any], authenticate_api_key: NamedDependency[Any]
) -> Principal:
    """Authenticate first, then check a body if there is one (it is optional here)."""
    principal = principal_from(request, authenticate_api_key)
    if (await request.body()).strip():
        await check_body(request)
    return principal


@dataclass
class OptionalBodyOperation(Operation):
    """An operation whose JSON body may be left out (Litestar marks every body required)."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False


class PortalLinkController(Controller):
    path = "/v1"
    tags = ["portal"]
    security = [{"apiKey": []}]
    dependencies = {"principal": Provide(principal_then_optional_body)}

    @post(
        "/users/{user_id:str}/portal-sessions",
        status_code=201,
        sync_to_thread=True,
        responses=problems(*COMMON, 404),
        summary="Open the self-service portal for a user: a one-time link valid for 5 minutes",
        operation_class=OptionalBodyOperation,
    )
    def create(
        self,
        user_id: FromPath[UserIdPath],
        principal: NamedDependency[Principal],
        issue_portal_link: Dep,
        data: JSONBody[PortalLinkRequest | None] = None,
    ) -> PortalLinkCreated:
        link = issue_portal_link(
            org_id=principal.org_id,
            user_id=user_id,
            return_url=data.return_url if data is not None else None,
            by=f"key:{principal.key_id}",
        )
        return PortalLinkCreated(url=link.url, expires_at=link.expires_at)


# --- the pages -----------------------------------------------------------------------------


class PortalController(Controller):
    path = "/portal"
    include_in_schema = False
    after_request = _secure  # type: ignore[assignment]
    exception_handlers = {
        Exception: _page_error,
        _SessionEnded: _session_ended,
        _FormRefused: _form_refused,
    }

    @get("/start", sync_to_thread=True)
    def start(
        self, request: Request[Any, Any, Any], redeem_portal_link: Dep, token: FromQuery[str] = ""
    ) -> Response[Any]:
        try:
            session_token, _ = redeem_portal_link(
                token=token, previous=request.cookies.get(SESSION_COOKIE)
            )
        except PortalLinkError:
            return _message(
                404,
                "Link not valid",
                "This link is unknown, already used or expired: a link works once, for 5 "
                "minutes. Open the portal again from your application.",
            )
        # Not a redirect: a SameSite=Strict cookie set on a navigation that another site
        # started is not sent on its redirects either, but is on a navigation this page starts.
        response: Response[Any] = _page("start")
        response.set_cookie(
            SESSION_COOKIE,
            session_token,
            path="/",
            secure=True,
            httponly=True,
            samesite="strict",
            max_age=int(ABSOLUTE_TIMEOUT.total_seconds()),
        )
        return response

    @get("/", sync_to_thread=True)
    def home(
        self,
        request: Request[Any, Any, Any],
        resume_portal_session: Dep,
        show_portal: Dep,
        notice: FromQuery[str] = "",
    ) -> Response[Any]:
        visit = _signed_in(request, resume_portal_session)
        overview: PortalOverview = show_portal(visit=visit)
        return _page(
            "home",
            visit=visit,
            overview=overview,
            rows=[_row(a) for a in overview.authenticators],
            notice=NOTICES.get(notice),
            verified_until=_when(visit.verified_until),
            verified_until_iso=_iso(visit.verified_until),
        )

    @post("/logout", sync_to_thread=True, status_code=200)
    def logout(
        self,
        request: Request[Any, Any, Any],
        data: Form,
        resume_portal_session: Dep,
        end_portal_session: Dep,
    ) -> Response[Any]:
        visit = _signed_in(request, resume_portal_session)
        _check_form(visit, data)
        end_portal_session(session_token=request.cookies.get(SESSION_COOKIE))
        response = _message(
            200,
            "Signed out",
            "You are signed out of your sign-in methods.",
            return_url=visit.return_url,
        )
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # --- confirm it's you ---------------------------------------------------------------

    def _verify_page(
        self,
        visit: PortalVisit,
        show_portal: Any,
        next_path: str,
        *,
        status: int = 200,
        error: str | None = None,
    ) -> Response[Any]:
        overview: PortalOverview = show_portal(visit=visit)
        if not overview.verification_needed and error is None:
            return Redirect(next_path, status_code=303)
        return _page("verify", status, visit=visit, overview=overview, next=next_path, error=error)

    @get("/verify", sync_to_thread=True)
    def verify_form(
        self,
        request: Request[Any, Any, Any],
        resume_portal_session: Dep,
        show_portal: Dep,
        next: FromQuery[str] = "",
    ) -> Response[Any]:
        visit = _signed_in(request, resume_portal_session)
        return self._verify_page(visit, show_portal, _safe_next(next))

    @post("/verify", sync_to_thread=True, status_code=303)
    def verify_code(
        self,
        request: Request[Any, Any, Any],
        data: Form,
        resume_portal_session: Dep,
        show_portal: Dep,
        verify_with_code: Dep,
    ) -> Response[Any]:
        visit = _signed_in(request, resume_portal_session)
        _check_form(visit, data)
        next_path = _safe_next(data.get("next"))
        try:
            verify_with_code(
                visit=visit,
                enrolment_id=UUID(data.get("enrolment_id", "")),
                code=data.get("code", "").strip(),
                context=_context(request),
            )
        except ValueError:
            return self._verify_page(
                visit, show_portal, next_path, status=422, error="Choose an authenticator app."
            )
        except (
            NotFoundError,
            InvalidCodeError,
            ThrottledError,
            ConflictError,
            InvalidRequestError,
        ) as error:
            status, _, message = _explain(error)
            return self._verify_page(visit, show_portal, next_path, status=status, error=message)
        return Redirect(next_path, status_code=303)

    # --- add an authenticator app ---------------------------------------------------------

    @get("/add/app", sync_to_thread=True)
    def add_app_form(
        self, request: Request[Any, Any, Any], resume_portal_session: Dep, show_portal: Dep
    ) -> Response[Any]:
        visit = _signed_in(request, resume_portal_session)
        if show_portal(visit=visit).verification_needed:
            return _to_verify("/portal/add/app")
        return _page("add_app", visit=visit, setup=None, error=None)

    @post("/add/app", sync_to_thread=True, status_code=303)
    def add_app(
        self,
        request: Request[Any, Any, Any],
        data: Form,
        resume_portal_session: Dep,
        start_app_setup: Dep,
    ) -> Response[Any]:
        visit = _signed_in(request, resume_portal_session)
        _check_form(visit, data)
        try:
            enrolment_id = start_app_setup(visit=visit, name=data.get("name"))
        except VerificationRequiredError:
            return _to_verify("/portal/add/app")
        except InvalidRequestError as error:
            return _page("add_app", 422, visit=visit, setup=None, error=_explain(error)[2])
        return Redirect(f"/portal/add/app/{enrolment_id}", status_code=303)

    @get("/add/app/{enrolment_id:uuid}", sync_to_thread=True)
    def app_setup(
        self,
        request: Request[Any, Any, Any],
        enrolment_id: FromPath[UUID],
        resume_portal_session: Dep,
        show_app_setup: Dep,
    ) -> Response[Any]:
        visit = _signed_in(request, resume_portal_session)
        setup = show_app_setup(visit=visit, enrolment_id=enrolment_id)
        return _page("add_app", visit=visit, setup=setup, error=None)

    @post("/add/app/{enrolment_id:uuid}", sync_to_thread=True, status_code=303)
    def confirm_app(
        self,
        request: Request[Any, Any, Any],
        enrolment_id: FromPath[UUID],
        data: Form,
        resume_portal_session: Dep,
        show_app_setup: Dep,
        confirm_app_setup: Dep,
    ) -> Response[Any]:
        visit = _signed_in(request, resume_portal_session)
        _check_form(visit, data)
        try:
            confirm_app_setup(
                visit=visit, enrolment_id=enrolment_id, code=data.get("code", "").strip()
            )
        except (InvalidCodeError, ThrottledError, InvalidRequestError) as error:
            status, _, message = _explain(error)
            setup = show_app_setup(visit=visit, enrolment_id=enrolment_id)
            return _page("add_app", status, visit=visit, setup=setup, error=message)
        return Redirect("/portal?notice=added", status_code=303)

    # --- add a security key, a passkey or this device -------------------------------------

    @get("/add/{kind:str}", sync_to_thread=True)
    def add_key_form(
        self,
        request: Request[Any, Any, Any],
        kind: FromPath[str],
        resume_portal_session: Dep,
        show_portal: Dep,
    ) -> Response[Any]:
        visit = _signed_in(request, resume_portal_session)
        if kind not in KEY_KINDS:
            return _message(
                404, "Not found", "There is no such kind of authenticator.", visit=visit
            )
        if show_portal(visit=visit).verification_needed:
            return _to_verify(f"/portal/add/{kind}")
        return _page("add_key", visit=visit, kind=kind, page=KEY_PAGES[kind])

    # --- rename and remove ----------------------------------------------------------------

    @get("/authenticators/{enrolment_id:uuid}/rename", sync_to_thread=True)
    def rename_form(
        self,
        request: Request[Any, Any, Any],
        enrolment_id: FromPath[UUID],
        resume_portal_session: Dep,
        show_authenticator: Dep,
    ) -> Response[Any]:
        visit = _signed_in(request, resume_portal_session)
        authenticator = show_authenticator(visit=visit, enrolment_id=enrolment_id)
        return _page("rename", visit=visit, authenticator=authenticator, name=None, error=None)

    @post("/authenticators/{enrolment_id:uuid}/rename", sync_to_thread=True, status_code=303)
    def rename(
        self,
        request: Request[Any, Any, Any],
        enrolment_id: FromPath[UUID],
        data: Form,
        resume_portal_session: Dep,
        show_authenticator: Dep,
        rename_authenticator: Dep,
    ) -> Response[Any]:
        visit = _signed_in(request, resume_portal_session)
        _check_form(visit, data)
        name = data.get("name", "")
        try:
            rename_authenticator(visit=visit, enrolment_id=enrolment_id, name=name)
        except (InvalidRequestError, ConflictError) as error:
            status, _, message = _explain(error)
            authenticator = show_authenticator(visit=visit, enrolment_id=enrolment_id)
            return _page(
                "rename",
                status,
                visit=visit,
                authenticator=authenticator,
                name=name,
                error=message,
            )
        return Redirect("/portal?notice=renamed", status_code=303)

    @get("/authenticators/{enrolment_id:uuid}/remove", sync_to_thread=True)
    def remove_form(
        self,
        request: Request[Any, Any, Any],
        enrolment_id: FromPath[UUID],
        resume_portal_session: Dep,
        show_portal: Dep,
        show_authenticator: Dep,
    ) -> Response[Any]:
        visit = _signed_in(request, resume_portal_session)
        authenticator: AuthenticatorView = show_authenticator(
            visit=visit, enrolment_id=enrolment_id
        )
        overview: PortalOverview = show_portal(visit=visit)
        if authenticator.status != "pending" and overview.verification_needed:
            return _to_verify(f"/portal/authenticators/{enrolment_id}/remove")
        others = [
            a
            for a in overview.authenticators
            if a.status == "active" and a.enrolment_id != enrolment_id
        ]
        return _page(
            "remove",
            visit=visit,
            authenticator=authenticator,
            last_one=authenticator.status == "active" and not others,
            error=None,
        )

    @post("/authenticators/{enrolment_id:uuid}/remove", sync_to_thread=True, status_code=303)
    def remove(
        self,
        request: Request[Any, Any, Any],
        enrolment_id: FromPath[UUID],
        data: Form,
        resume_portal_session: Dep,
        remove_authenticator: Dep,
    ) -> Response[Any]:
        visit = _signed_in(request, resume_portal_session)
        _check_form(visit, data)
        try:
            remove_authenticator(visit=visit, enrolment_id=enrolment_id)
        except VerificationRequiredError:
            return _to_verify(f"/portal/authenticators/{enrolment_id}/remove")
        return Redirect("/portal?notice=removed", status_code=303)


# --- the JSON calls of the pages' JavaScript -----------------------------------------------


class _PortalProblem(Exception):
    def __init__(self, status: int, detail: str, *, slug: str, title: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.title = title


def _problem_json(
    status: int, detail: str, *, slug: str, title: str, **extensions: Any
) -> Response[Any]:
    """problem+json with extension members (the shared `Problem` schema has none of these)."""
    body = {
        "type": problem_type(slug),
        "title": title,
        "status": status,
        "detail": _sentence(detail),
        **extensions,
    }
    return Response(body, status_code=status, media_type=PROBLEM_JSON)


def _problem(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, VerificationRequiredError):
        response = _problem_json(
            403,
            str(exc),
            slug="verification-required",
            title="Confirm it's you first",
            verification_required=True,
        )
    elif isinstance(exc, _PortalProblem):
        response = _problem_json(exc.status, exc.detail, slug=exc.slug, title=exc.title)
    else:  # pragma: no cover - only the two classes above are mapped here
        raise exc
    return _secure(response)


def _api_visit(request: Request[Any, Any, Any], resume_portal_session: Any) -> PortalVisit:
    """The live session, and a CSRF header that matches it; raises a problem otherwise."""
    visit = _resume(request, resume_portal_session)
    if visit is None:
        raise _PortalProblem(
            401,
            "Your portal session has ended. Open the portal again from your application.",
            slug="portal-session-ended",
            title="Your session has ended",
        )
    if not csrf_matches(visit.csrf_token, request.headers.get(CSRF_HEADER)):
        raise _PortalProblem(
            403,
            "The request did not carry this page's CSRF token. Reload the page.",
            slug="csrf",
            title="Request refused",
        )
    return visit


Kind = Literal["security-key", "passkey", "platform"]
Credential = dict[str, Any]  # PublicKeyCredential.toJSON(), exactly as the browser produced it


class KeySetupRequest(msgspec.Struct, forbid_unknown_fields=True):
    kind: Kind
    name: Annotated[str, Meta(max_length=64)] | None = None


class KeyConfirmRequest(msgspec.Struct, forbid_unknown_fields=True):
    credential: Credential


class EmptyRequest(msgspec.Struct, forbid_unknown_fields=True):
    pass


class KeyVerificationRequest(msgspec.Struct, forbid_unknown_fields=True):
    authentication_id: UUID
    credential: Credential


class PortalApiController(Controller):
    path = "/portal/api"
    include_in_schema = False
    after_request = _secure  # type: ignore[assignment]
    exception_handlers = {
        _PortalProblem: _problem,
        VerificationRequiredError: _problem,
    }

    @post("/keys", sync_to_thread=True, status_code=201)
    def start_key(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[KeySetupRequest],
        resume_portal_session: Dep,
        start_key_setup: Dep,
    ) -> dict[str, Any]:
        visit = _api_visit(request, resume_portal_session)
        started = start_key_setup(visit=visit, kind=data.kind, name=data.name)
        return {"enrolment_id": str(started.enrolment_id), "options": started.options}

    @post("/keys/{enrolment_id:uuid}/confirm", sync_to_thread=True, status_code=200)
    def confirm_key(
        self,
        request: Request[Any, Any, Any],
        enrolment_id: FromPath[UUID],
        data: JSONBody[KeyConfirmRequest],
        resume_portal_session: Dep,
        confirm_key_setup: Dep,
    ) -> dict[str, Any]:
        visit = _api_visit(request, resume_portal_session)
        confirm_key_setup(visit=visit, enrolment_id=enrolment_id, credential=data.credential)
        return {"enrolment_id": str(enrolment_id), "status": "active"}

    @post("/verify/options", sync_to_thread=True, status_code=200)
    def verify_options(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[EmptyRequest],
        resume_portal_session: Dep,
        start_key_verification: Dep,
    ) -> dict[str, Any]:
        visit = _api_visit(request, resume_portal_session)
        challenge = start_key_verification(visit=visit, context=_context(request))
        return {
            "authentication_id": str(challenge.authentication_id),
            "options": challenge.options,
        }

    @post("/verify", sync_to_thread=True, status_code=200)
    def verify_key(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[KeyVerificationRequest],
        resume_portal_session: Dep,
        finish_key_verification: Dep,
    ) -> dict[str, Any]:
        visit = _api_visit(request, resume_portal_session)
        finish_key_verification(
            visit=visit, authentication_id=data.authentication_id, credential=data.credential
        )
        return {"status": "verified"}


def _static_headers(response: Response[Any]) -> Response[Any]:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def portal_static_router() -> Router:
    """The portal's stylesheet and script, from the package (no CDN)."""
    return create_static_files_router(
        path="/portal/static",
        directories=[STATIC_DIR],
        name="portal-static",
        cache_control=CacheControlHeader(max_age=300, public=True),
        after_request=_static_headers,
    )
