"""The admin area: server-rendered pages behind an AAL2 sign-in (ADR 12); not in the OpenAPI."""

from __future__ import annotations

import secrets
from collections import defaultdict
from datetime import date, timedelta
from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, URLEncodedBody
from litestar.response import Redirect, Template

from application.administrators import (
    AdminSession,
    AdminSessions,
    EnrolAdministrator,
    ListAdministrators,
    RemoveAdministrator,
    SignInAdministrator,
    StartAdministratorEnrolment,
    csrf_matches,
)
from application.analytics import (
    ENROLMENT_ADDED,
    RISK,
    SMS_DELIVERED,
    SMS_FAILED,
    ReadAnalytics,
)
from application.audit import ReadAuditTrail
from application.errors import (
    ConflictError,
    InvalidCodeError,
    InvalidRequestError,
    NotFoundError,
    ThrottledError,
    UnauthorizedError,
)
from application.ports import Clock, RequestContext
from domain.administrator import AdministratorError
from domain.assurance import PHISHING_RESISTANT_METHODS
from entrypoints.http.charts import Bar, bar_chart, gauge, time_series

SESSION_COOKIE = "__Host-tessera-admin"
#: Double-submit token for the forms shown before a session exists (sign-in, enrolment).
FORM_COOKIE = "__Host-tessera-form"
DASHBOARD_DAYS = 30
RISK_LEVELS = ("low", "medium", "high")
RISK_COLOURS = {"low": "#009E73", "medium": "#E69F00", "high": "#D55E00"}
AUDIT_PAGE = 50

Dep = NamedDependency[Any]
Form = URLEncodedBody[dict[str, str]]

CSS = """
:root{--ink:#1f2933;--muted:#5f6b7a;--line:#e3e6ea;--bg:#f6f7f9;--accent:#0072B2;--bad:#b42318}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;
color:var(--ink);background:var(--bg)}a{color:var(--accent)}
header{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center;padding:.6rem 1.5rem;
background:#fff;border-bottom:1px solid var(--line)}header .brand{font-weight:700;font-size:1.1rem}
header nav{display:flex;gap:1rem;flex:1}header form{margin:0}
main{max-width:1320px;margin:0 auto;padding:1rem 1.5rem 2rem}
h1{font-size:1.35rem;margin:.2rem 0 1rem}h2{font-size:1rem;margin:0 0 .5rem}
.grid{display:grid;grid-template-columns:repeat(12,1fr);gap:1rem}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:1rem}
.span-8{grid-column:span 8}.span-4{grid-column:span 4}.span-6{grid-column:span 6}
.span-3{grid-column:span 3}.span-12{grid-column:span 12}
@media (max-width:900px){.span-8,.span-4,.span-6{grid-column:span 12}.span-3{grid-column:span 6}}
.stat{font-size:1.8rem;font-weight:700}.muted{color:var(--muted)}
svg.chart{width:100%;height:auto;display:block}
form.stack{display:grid;gap:.8rem;max-width:24rem}
label{display:grid;gap:.25rem;font-weight:600}
input,select{font:inherit;padding:.5rem .6rem;border:1px solid #c4cbd4;border-radius:6px}
button{font:inherit;padding:.5rem 1rem;border:0;border-radius:6px;background:var(--accent);
color:#fff;cursor:pointer}button.link{background:none;color:var(--accent);padding:0}
.error{color:var(--bad);font-weight:600}.qr svg{width:220px;height:220px}
table{width:100%;border-collapse:collapse;font-size:.9rem}
th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
.table-wrap{overflow-x:auto}.filters{display:flex;flex-wrap:wrap;gap:.8rem;align-items:end}
.centre{max-width:28rem;margin:3rem auto}code{word-break:break-all}
"""

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the enrolment link carries its token in the query
}


def _secure(response: Response[Any]) -> Response[Any]:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _page(name: str, status: int = 200, **context: Any) -> Template:
    return Template(template_name=f"admin/{name}.html", context=context, status_code=status)


def _form_token(request: Request[Any, Any, Any]) -> str:
    return request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(32)


def _with_form_cookie(response: Response[Any], token: str) -> Response[Any]:
    response.set_cookie(FORM_COOKIE, token, path="/", secure=True, httponly=True, samesite="strict")
    return response


def _form_ok(request: Request[Any, Any, Any], data: dict[str, str]) -> bool:
    cookie = request.cookies.get(FORM_COOKIE)
    return cookie is not None and csrf_matches(cookie, data.get("csrf_token"))


def _forbidden() -> Template:
    return _page(
        "message",
        403,
        title="Request refused",
        message="The form had expired or did not come from this site. Reload it and try again.",
    )


def _session(request: Request[Any, Any, Any], admin_sessions: AdminSessions) -> AdminSession | None:
    return admin_sessions.resume(request.cookies.get(SESSION_COOKIE))


def _to_login() -> Response[Any]:
    response: Response[Any] = Redirect("/admin/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _signed_in(
    request: Request[Any, Any, Any], admin_sessions: AdminSessions, identity: Any
) -> Response[Any]:
    admin_sessions.close(request.cookies.get(SESSION_COOKIE))  # a sign-in never reuses an id
    session_id, _ = admin_sessions.open(identity)
    response: Response[Any] = Redirect("/admin", status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session_id, path="/", secure=True, httponly=True, samesite="strict"
    )
    response.delete_cookie(FORM_COOKIE, path="/")
    return response


def _context(request: Request[Any, Any, Any]) -> RequestContext:
    ip = request.client.host if request.client else "unknown"
    return RequestContext(ip=ip, user_agent=request.headers.get("user-agent", "")[:512])


def _days(today: date) -> list[date]:
    return [today - timedelta(days=DASHBOARD_DAYS - 1 - i) for i in range(DASHBOARD_DAYS)]


def dashboard_charts(
    read_analytics: ReadAnalytics, session: AdminSession, *, today: date
) -> dict[str, Any]:
    """The dashboard's charts and headline numbers from the analytics read models."""
    principal = session.identity.principal
    days = _days(today)
    added = read_analytics.daily(
        principal=principal, metrics=(ENROLMENT_ADDED,), since=days[0], until=days[-1]
    )
    per_method: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    for row in added:
        per_method[row.label][(row.day - days[0]).days] += row.value
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for d in read_analytics.authentications(principal=principal, since=days[0], until=days[-1]):
        totals[d.method][0] += d.attempts
        totals[d.method][1] += d.successes
    success_bars = [
        Bar(
            label=method,
            value=(s / a) if a else 0.0,
            text=f"{round(100 * s / a)}% ({s} of {a})" if a else "no attempts",
            data_value=str(round(100 * s / a)) if a else "",
        )
        for method, (a, s) in sorted(totals.items())
    ]
    risk_counts = dict.fromkeys(RISK_LEVELS, 0)
    for row in read_analytics.daily(
        principal=principal, metrics=(RISK,), since=days[0], until=days[-1]
    ):
        risk_counts[row.label] = risk_counts.get(row.label, 0) + row.value
    risk_bars = [
        Bar(
            label=level,
            value=count,
            text=str(count),
            data_value=str(count),
            colour=RISK_COLOURS.get(level),
        )
        for level, count in risk_counts.items()
    ]
    sms: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # "provider · country": ok, failed
    for row in read_analytics.daily(
        principal=principal, metrics=(SMS_DELIVERED, SMS_FAILED), since=days[0], until=days[-1]
    ):
        provider, _, country = row.label.partition("/")
        sms[f"{provider} · {country}"][row.metric == SMS_FAILED] += row.value
    sms_bars = [
        Bar(
            label=route,
            value=(ok / (ok + failed)) if ok + failed else 0.0,
            text=f"{round(100 * ok / (ok + failed))}% ({ok} of {ok + failed})"
            if ok + failed
            else "none",
            data_value=str(round(100 * ok / (ok + failed))) if ok + failed else "",
        )
        for route, (ok, failed) in sorted(sms.items())
    ]
    coverage = read_analytics.coverage(principal=principal)
    attempts = sum(a for a, _ in totals.values())
    successes = sum(s for _, s in totals.values())
    return {
        "enrolments_chart": time_series(
            "enrolments",
            f"Authenticators added per day and method, last {DASHBOARD_DAYS} days",
            days,
            dict(per_method),
        ),
        "success_chart": bar_chart(
            "success-rate", "Authentication success rate per method", success_bars, maximum=1.0
        ),
        "coverage_chart": gauge(
            "coverage",
            "Users with at least one active authenticator",
            coverage.with_authenticator,
            coverage.users,
            caption="users",
        ),
        "phishing_chart": gauge(
            "phishing-resistant",
            "Users with a phishing-resistant authenticator",
            coverage.with_phishing_resistant,
            coverage.users,
            caption="users",
        ),
        "risk_chart": bar_chart("risk", "Logins started per risk level", risk_bars),
        "sms_chart": bar_chart(
            "sms-delivery", "SMS delivery rate per provider and country", sms_bars, maximum=1.0
        )
        if sms_bars
        else None,
        "phishing_resistant_methods": sorted(PHISHING_RESISTANT_METHODS),
        "stats": {
            "users": coverage.users,
            "added": sum(sum(v) for v in per_method.values()),
            "attempts": attempts,
            "successes": successes,
        },
        "since": days[0],
        "until": days[-1],
    }


class AdminController(Controller):
    path = "/admin"
    include_in_schema = False
    after_request = _secure  # type: ignore[assignment]

    @get("/admin.css", sync_to_thread=False)
    def stylesheet(self) -> Response[str]:
        return Response(
            CSS, media_type="text/css", headers={"Cache-Control": "public, max-age=300"}
        )

    @get("/login", sync_to_thread=False)
    def login_form(self, request: Request[Any, Any, Any]) -> Response[Any]:
        token = _form_token(request)
        return _with_form_cookie(_page("login", csrf_token=token, error=None), token)

    @post("/login", sync_to_thread=True, status_code=303)
    def login(
        self,
        request: Request[Any, Any, Any],
        data: Form,
        sign_in_administrator: Dep,
        admin_sessions: Dep,
    ) -> Response[Any]:
        if not _form_ok(request, data):
            return _forbidden()
        use_case: SignInAdministrator = sign_in_administrator
        token = _form_token(request)
        form = {k: data.get(k, "") for k in ("org_id", "user_id")}

        def again(status: int, error: str, headers: dict[str, str] | None = None) -> Response[Any]:
            page = _page("login", status, csrf_token=token, error=error, form=form)
            page.headers.update(headers or {})
            return page

        try:
            org_id = UUID(data.get("org_id", "").strip())
        except ValueError:
            return again(401, "The sign-in details are not valid.")
        try:
            identity = use_case(
                org_id=org_id,
                user_id=data.get("user_id", "").strip(),
                password=data.get("password", ""),
                code=data.get("code", "").strip(),
                context=_context(request),
            )
        except ThrottledError as throttled:
            return again(
                429,
                f"Too many failed attempts. Try again in {throttled.retry_after} seconds."
                if not throttled.locked
                else "Sign-in is locked after too many failures; ask another administrator.",
                {"Retry-After": str(throttled.retry_after)},
            )
        except (UnauthorizedError, InvalidCodeError, InvalidRequestError, NotFoundError):
            return again(401, "The sign-in details are not valid.")
        except ConflictError:
            return again(409, "The sign-in could not be completed. Try again.")
        return _signed_in(request, admin_sessions, identity)

    @get("/enrol", sync_to_thread=True)
    def enrol_form(
        self,
        request: Request[Any, Any, Any],
        start_administrator_enrolment: Dep,
        token: FromQuery[str] = "",
    ) -> Response[Any]:
        use_case: StartAdministratorEnrolment = start_administrator_enrolment
        try:
            admin, enrolment = use_case(token=token)
        except (AdministratorError, InvalidRequestError, NotFoundError):
            return _page(
                "message",
                404,
                title="Link not valid",
                message="This enrolment link is unknown, already used or expired. Ask for a "
                "new one (tessera admin add).",
            )
        form_token = _form_token(request)
        page = _page(
            "enrol",
            csrf_token=form_token,
            token=token,
            org_id=admin.org_id,
            user_id=admin.user_id,
            enrolment_id=enrolment.enrolment_id,
            qr_svg=enrolment.qr_svg,
            secret=enrolment.secret_b32,
            error=None,
        )
        return _with_form_cookie(page, form_token)

    @post("/enrol", sync_to_thread=True, status_code=303)
    def enrol(
        self,
        request: Request[Any, Any, Any],
        data: Form,
        enrol_administrator: Dep,
        admin_sessions: Dep,
    ) -> Response[Any]:
        if not _form_ok(request, data):
            return _forbidden()
        use_case: EnrolAdministrator = enrol_administrator
        token = data.get("token", "")
        retry = f"/admin/enrol?token={token}"
        try:
            identity = use_case(
                token=token,
                enrolment_id=UUID(data.get("enrolment_id", "")),
                code=data.get("code", "").strip(),
                password=data.get("password", ""),
                confirm=data.get("password_confirm", ""),
            )
        except (AdministratorError, NotFoundError, ValueError):
            return _page(
                "message",
                404,
                title="Link not valid",
                message="This enrolment link is unknown, already used or expired.",
            )
        except InvalidRequestError as error:
            return _page("message", 422, title="Not enrolled", message=str(error), retry=retry)
        except (InvalidCodeError, ThrottledError, ConflictError):
            return _page(
                "message",
                422,
                title="Not enrolled",
                message="The code was not accepted. Open the link again, scan the new code "
                "and enter the code your app shows.",
                retry=retry,
            )
        return _signed_in(request, admin_sessions, identity)

    @post("/logout", sync_to_thread=False, status_code=303)
    def logout(
        self, request: Request[Any, Any, Any], data: Form, admin_sessions: Dep
    ) -> Response[Any]:
        session = _session(request, admin_sessions)
        if session is None:
            return _to_login()
        if not csrf_matches(session.csrf_token, data.get("csrf_token")):
            return _forbidden()
        admin_sessions.close(request.cookies.get(SESSION_COOKIE))
        return _to_login()

    @get("/", sync_to_thread=True)
    def dashboard(
        self,
        request: Request[Any, Any, Any],
        admin_sessions: Dep,
        read_analytics: Dep,
        clock: Dep,
    ) -> Response[Any]:
        session = _session(request, admin_sessions)
        if session is None:
            return _to_login()
        today = (clock_now := _now(clock)).date()
        charts = dashboard_charts(read_analytics, session, today=today)
        return _page("dashboard", session=session, now=clock_now, active="dashboard", **charts)

    @get("/administrators", sync_to_thread=True)
    def administrators(
        self, request: Request[Any, Any, Any], admin_sessions: Dep, read_audit_trail: Dep
    ) -> Response[Any]:
        session = _session(request, admin_sessions)
        if session is None:
            return _to_login()
        return _administrators_page(session, read_audit_trail)

    @post("/administrators/remove", sync_to_thread=True, status_code=200)
    def remove_administrator(
        self,
        request: Request[Any, Any, Any],
        data: Form,
        admin_sessions: Dep,
        read_audit_trail: Dep,
        identity_app: Dep,
        clock: Dep,
    ) -> Response[Any]:
        session = _session(request, admin_sessions)
        if session is None:
            return _to_login()
        if not csrf_matches(session.csrf_token, data.get("csrf_token")):
            return _forbidden()
        user_id = data.get("user_id", "").strip()
        # built from the app's existing dependencies: a per-request frozen dataclass
        remove = RemoveAdministrator(app=identity_app, sessions=admin_sessions, clock=clock)
        try:
            remove(
                org_id=session.identity.org_id,
                user_id=user_id,
                by=f"admin:{session.identity.user_id}",
            )
        except InvalidRequestError as error:
            return _administrators_page(session, read_audit_trail, 422, error=str(error))
        except NotFoundError:
            return _administrators_page(
                session, read_audit_trail, 404, error="There is no such administrator."
            )
        except ConflictError:
            return _administrators_page(
                session, read_audit_trail, 409, error="Someone changed it at the same time."
            )
        return _administrators_page(session, read_audit_trail, removed=user_id)

    @get("/audit", sync_to_thread=True)
    def audit(
        self,
        request: Request[Any, Any, Any],
        admin_sessions: Dep,
        read_audit_trail: Dep,
        user_id: FromQuery[str] = "",
        action: FromQuery[str] = "",
        outcome: FromQuery[str] = "",
        cursor: FromQuery[str] = "",
    ) -> Response[Any]:
        session = _session(request, admin_sessions)
        if session is None:
            return _to_login()
        trail: ReadAuditTrail = read_audit_trail
        filters = {"user_id": user_id, "action": action, "outcome": outcome}
        try:
            page = trail.page(
                principal=session.identity.principal,
                user_id=user_id or None,
                action=action or None,
                outcome=outcome or None,
                cursor=cursor or None,
                limit=AUDIT_PAGE,
            )
        except InvalidRequestError as error:
            return _page(
                "audit",
                400,
                session=session,
                active="audit",
                records=[],
                next_cursor=None,
                filters=filters,
                error=str(error),
            )
        return _page(
            "audit",
            session=session,
            active="audit",
            records=page.records,
            next_cursor=page.next_cursor,
            filters=filters,
            error=None,
        )


def _administrators_page(
    session: AdminSession,
    read_audit_trail: ReadAuditTrail,
    status: int = 200,
    *,
    error: str | None = None,
    removed: str | None = None,
) -> Template:
    listed = ListAdministrators(read_audit_trail)(principal=session.identity.principal)
    return _page(
        "administrators",
        status,
        session=session,
        active="administrators",
        administrators=listed,
        error=error,
        removed=removed,
    )


def _now(clock: Clock) -> Any:
    return clock.now()
