"""`tessera serve --demo`: a tiny stand-in for the application at /demo, so a person can enrol a
security key or passkey in the portal and sign in with it without writing an application.

It calls the same use cases an application reaches over the API, as the demo organisation with
`client_id` "demo". It exists only when TESSERA_DEMO_ORG is set (`serve --demo` sets it).
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.params import URLEncodedBody
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from msgspec import Meta

from application.authentications import Caller, StartAuthentication
from application.errors import TesseraError
from application.portal import IssuePortalLink
from application.ports import RequestContext
from application.webauthn import VerifyWebAuthn, WebAuthnLoginOptions

CSRF_COOKIE = "tessera-demo-csrf"
#: A custom header: browsers send it cross-site only after a CORS preflight this app refuses.
CSRF_HEADER = "x-tessera-demo"
Dep = NamedDependency[Any]
STATIC_DIR = Path(__file__).parent / "static" / "demo"


class LoginStart(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Annotated[str, Meta(max_length=256)] = ""


class LoginFinish(msgspec.Struct, forbid_unknown_fields=True):
    authentication_id: UUID
    credential: dict[str, Any]


def _org(settings: Any) -> UUID:
    if settings.demo_org is None:
        raise PermissionDeniedException("the demo application is off")
    return UUID(str(settings.demo_org))


def _caller(settings: Any) -> Caller:
    return Caller(org_id=_org(settings), client_id="demo")


def _context(request: Request[Any, Any, Any]) -> RequestContext:
    client = request.client.host if request.client else "127.0.0.1"
    return RequestContext(ip=client, user_agent=request.headers.get("user-agent", "")[:1024])


def _check_header(request: Request[Any, Any, Any]) -> None:
    if request.headers.get(CSRF_HEADER) != "1":
        raise PermissionDeniedException("send the X-Tessera-Demo header")


def _claims(token: str) -> dict[str, Any]:
    """The payload of a token this process just signed (for display; not a verification)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _problem(error: TesseraError) -> Response[dict[str, str]]:
    return Response({"detail": str(error)}, status_code=422)


class DemoController(Controller):
    path = "/demo"
    include_in_schema = False

    @get("/", sync_to_thread=False)
    def page(self, request: Request[Any, Any, Any], settings: Dep) -> Response[Any]:
        _org(settings)
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        response: Response[Any] = Template(
            template_name="demo/index.html", context={"csrf_token": token}
        )
        response.set_cookie(CSRF_COOKIE, token, path="/demo", httponly=True, samesite="strict")
        response.headers.update(
            {
                "Cache-Control": "no-store",
                "Content-Security-Policy": "default-src 'none'; script-src 'self'; "
                "style-src 'self'; connect-src 'self'; form-action 'self'; "
                "frame-ancestors 'none'; base-uri 'none'",
            }
        )
        return response

    @post("/portal", sync_to_thread=True, status_code=303)
    def portal(
        self,
        request: Request[Any, Any, Any],
        data: URLEncodedBody[dict[str, str]],
        settings: Dep,
        issue_portal_link: Dep,
    ) -> Response[Any]:
        cookie = request.cookies.get(CSRF_COOKIE)
        if not cookie or not secrets.compare_digest(cookie, data.get("csrf_token", "")):
            raise PermissionDeniedException("the form had expired: reload the page")
        user_id = (data.get("user_id") or "").strip()[:256] or "alice"
        issue: IssuePortalLink = issue_portal_link
        link = issue(
            org_id=_org(settings),
            user_id=user_id,
            return_url=str(request.base_url).rstrip("/") + "/demo/",
            by="demo",
        )
        target = urlsplit(link.url)  # same server: stay on the host and port the page came from
        return Redirect(f"{target.path}?{target.query}", status_code=303)

    @post("/login", sync_to_thread=True, status_code=200)
    def start(
        self,
        request: Request[Any, Any, Any],
        data: LoginStart,
        settings: Dep,
        start_authentication: Dep,
        webauthn_login_options: Dep,
    ) -> Response[Any]:
        _check_header(request)
        starter: StartAuthentication = start_authentication
        options: WebAuthnLoginOptions = webauthn_login_options
        try:
            session = starter(
                caller=_caller(settings),
                user_id=data.user_id.strip() or None,
                context=_context(request),
            ).session
            request_options = options(caller=_caller(settings), authentication_id=session.id)
        except TesseraError as error:
            return _problem(error)
        return Response({"authentication_id": str(session.id), "options": request_options})

    @post("/login/finish", sync_to_thread=True, status_code=200)
    def finish(
        self,
        request: Request[Any, Any, Any],
        data: LoginFinish,
        settings: Dep,
        verify_webauthn: Dep,
    ) -> Response[Any]:
        _check_header(request)
        verifier: VerifyWebAuthn = verify_webauthn
        try:
            outcome = verifier(
                caller=_caller(settings),
                authentication_id=data.authentication_id,
                credential=data.credential,
            )
        except TesseraError as error:
            return _problem(error)
        if outcome.token is None:
            return Response({"status": outcome.session.status, "claims": None})
        return Response({"status": "satisfied", "claims": _claims(outcome.token.access_token)})


def demo_static_router() -> Router:
    return create_static_files_router(
        path="/demo/static", directories=[STATIC_DIR], name="demo-static", include_in_schema=False
    )
