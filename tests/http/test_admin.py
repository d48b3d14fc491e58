"""The admin area over HTTP on SQLite and PostgreSQL: enrol, sign in, sessions, CSRF, charts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse
from uuid import uuid4

import pytest
from litestar.testing import TestClient

from adapters.admin_sessions import InMemoryAdminSessionStore
from adapters.system import CsprngSecrets
from application.administrators import AdminIdentity, AdminSessions, SignInRefusedError
from entrypoints.container import Container
from entrypoints.http.app import create_app
from tests.fakes import FakeClock
from tests.helpers import b32decode, totp
from tests.http.conftest import context

PASSWORD = "correct horse battery"


@pytest.fixture
def web(container: Container) -> Iterator[TestClient]:  # type: ignore[type-arg]
    """An https client: the admin cookies are Secure, so httpx sends them only over https."""
    with TestClient(app=create_app(container), base_url="https://testserver.local") as client:
        yield client


def _field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} in the page"
    return found.group(1)


def _link(container: Container, org_id: Any, user_id: str = "root") -> str:
    link = container.appoint_administrator()(org_id=org_id, user_id=user_id, by="test")
    return f"/admin/enrol?token={link.token}"


def _enrol(web, container, clock, org_id, user_id="root", password=PASSWORD):  # type: ignore[no-untyped-def]
    """Follow a fresh link to the end; returns the authenticator's key (signed in)."""
    page = web.get(_link(container, org_id, user_id))
    assert page.status_code == 200, page.text
    key = b32decode(re.search(r'id="secret">([A-Z2-7]+)<', page.text).group(1))  # type: ignore[union-attr]
    token = parse_qs(urlparse(str(page.url)).query)["token"][0]
    done = web.post(
        "/admin/enrol",
        data={
            "csrf_token": _field(page.text, "csrf_token"),
            "token": token,
            "enrolment_id": _field(page.text, "enrolment_id"),
            "password": password,
            "password_confirm": password,
            "code": totp(key, clock.now()),
        },
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/admin", done.text
    clock.advance(30)
    return key


def _sign_in(web, org_id, code, *, user_id="root", password=PASSWORD):  # type: ignore[no-untyped-def]
    form = web.get("/admin/login")
    return web.post(
        "/admin/login",
        data={
            "csrf_token": _field(form.text, "csrf_token"),
            "org_id": str(org_id),
            "user_id": user_id,
            "password": password,
            "code": code,
        },
        follow_redirects=False,
    )


def _sign_out(web) -> None:  # type: ignore[no-untyped-def]
    page = web.get("/admin/audit")
    response = web.post(
        "/admin/logout",
        data={"csrf_token": _field(page.text, "csrf_token")},
        follow_redirects=False,
    )
    assert response.status_code == 303


def _seed(web, headers, clock, user="alice") -> None:  # type: ignore[no-untyped-def]
    started = web.post(f"/v1/users/{user}/enrolments", json={"method": "totp"}, headers=headers)
    key = b32decode(started.json()["secret"])
    enrolment = started.json()["enrolment_id"]
    confirm = {"code": totp(key, clock.now())}
    assert web.post(f"/v1/enrolments/{enrolment}/confirm", json=confirm, headers=headers).is_success
    clock.advance(30)
    for code in (totp(key, clock.now()), "000000"):
        web.post(
            "/v1/authentications",
            headers=headers,
            json={"user_id": user, "context": context(), "method": "totp", "code": code},
        )


def test_an_appointed_administrator_enrols_and_sees_the_dashboard_with_the_numbers(
    web, container, clock, org, headers
) -> None:
    _seed(web, headers, clock)
    _enrol(web, container, clock, org.org_id)
    cookie = next(c for c in web.cookies.jar if c.name == "__Host-tessera-admin")
    assert cookie.secure and cookie.path == "/" and cookie.has_nonstandard_attr("HttpOnly")
    page = web.get("/admin")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert html.count("<svg") >= 5
    # alice's authenticator plus the administrator's own, both TOTP, on the same day
    assert 'class="total" data-series="totp" data-value="2"' in html
    # alice: one good and one wrong code; the administrator's confirmation is not a login
    assert 'data-label="totp" data-value="50">50% (1 of 2)' in html
    assert 'class="gauge-counts" data-part="2" data-whole="2">2 of 2 users' in html
    assert 'data-label="low" data-value="2"' in html
    assert "No SMS sent in these 30 days." in html
    # an SMS enrolment sent through the console provider shows up per provider and country
    sent = web.post(
        "/v1/users/carol/enrolments",
        headers=headers,
        json={"method": "sms", "phone_number": "+447400123456"},
    )
    assert sent.status_code == 201, sent.text
    html = web.get("/admin").text
    assert 'data-label="console · GB" data-value="100">100% (1 of 1)' in html


def test_the_one_time_link_works_once(web, container, clock, org) -> None:
    link = _link(container, org.org_id)
    page = web.get(link)
    key = b32decode(re.search(r'id="secret">([A-Z2-7]+)<', page.text).group(1))  # type: ignore[union-attr]
    form = {
        "csrf_token": _field(page.text, "csrf_token"),
        "token": link.split("=", 1)[1],
        "enrolment_id": _field(page.text, "enrolment_id"),
        "password": PASSWORD,
        "password_confirm": PASSWORD,
        "code": totp(key, clock.now()),
    }
    assert web.post("/admin/enrol", data=form, follow_redirects=False).status_code == 303
    clock.advance(30)
    assert web.get(link).status_code == 404
    web.cookies.set("__Host-tessera-form", form["csrf_token"])
    again = web.post("/admin/enrol", data=form | {"code": totp(key, clock.now())})
    assert again.status_code == 404 and "already used" in again.text


def test_a_link_expires_after_a_day_and_a_new_one_replaces_it(web, container, clock, org) -> None:
    first = _link(container, org.org_id)
    clock.advance(24 * 3600)
    assert web.get(first).status_code == 404
    second = _link(container, org.org_id)
    third = _link(container, org.org_id)
    assert web.get(second).status_code == 404
    assert web.get(third).status_code == 200
    assert web.get("/admin/enrol?token=nonsense").status_code == 404


def test_sign_in_needs_the_password_and_the_code_and_failures_are_throttled(
    web, container, clock, org
) -> None:
    key = _enrol(web, container, clock, org.org_id)
    _sign_out(web)
    assert web.get("/admin", follow_redirects=False).headers["location"] == "/admin/login"
    wrong_password = _sign_in(web, org.org_id, totp(key, clock.now()), password="x" * 12)
    assert wrong_password.status_code == 401 and "not valid" in wrong_password.text
    assert _sign_in(web, org.org_id, "000000").status_code == 401
    assert _sign_in(web, org.org_id, "111111").status_code == 401
    throttled = _sign_in(web, org.org_id, totp(key, clock.now()))
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
    clock.advance(60)
    signed_in = _sign_in(web, org.org_id, totp(key, clock.now()))
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/admin"
    assert web.get("/admin").status_code == 200


def test_signing_in_again_replaces_the_session_and_signing_out_ends_it(
    web, container, clock, org
) -> None:
    key = _enrol(web, container, clock, org.org_id)
    first = web.cookies.get("__Host-tessera-admin")
    assert _sign_in(web, org.org_id, totp(key, clock.now())).status_code == 303
    second = web.cookies.get("__Host-tessera-admin")
    assert second and second != first
    web.cookies.set("__Host-tessera-admin", first)
    assert web.get("/admin", follow_redirects=False).status_code == 303
    web.cookies.set("__Host-tessera-admin", second)
    _sign_out(web)
    web.cookies.set("__Host-tessera-admin", second)
    assert web.get("/admin", follow_redirects=False).status_code == 303


def test_unknown_users_and_other_organisations_cannot_sign_in(web, container, clock, org) -> None:
    key = _enrol(web, container, clock, org.org_id)
    _sign_out(web)
    other = container.create_organisation()(name="Globex")
    code = totp(key, clock.now())
    assert _sign_in(web, other.org_id, code).status_code == 401
    assert _sign_in(web, org.org_id, code, user_id="mallory").status_code == 401
    assert _sign_in(web, "not-a-uuid", code).status_code == 401
    unknown = uuid4()
    assert _sign_in(web, unknown, code).status_code == 401
    assert container.identity_app().find_account(unknown, "root") is None


def test_forms_without_their_csrf_token_are_refused(web, container, clock, org) -> None:
    key = _enrol(web, container, clock, org.org_id)
    assert web.post("/admin/logout", data={}, follow_redirects=False).status_code == 403
    assert web.get("/admin").status_code == 200  # still signed in
    _sign_out(web)
    web.get("/admin/login")
    forged = {"org_id": str(org.org_id), "user_id": "root", "password": PASSWORD}
    refused = web.post("/admin/login", data=forged | {"code": totp(key, clock.now())})
    assert refused.status_code == 403
    refused = web.post(
        "/admin/login", data=forged | {"code": totp(key, clock.now()), "csrf_token": "guess"}
    )
    assert refused.status_code == 403


def test_a_session_ends_after_15_idle_minutes(web, container, clock, org) -> None:
    key = _enrol(web, container, clock, org.org_id)
    clock.advance(14 * 60)
    assert web.get("/admin/audit").status_code == 200
    clock.advance(15 * 60)
    ended = web.get("/admin/audit", follow_redirects=False)
    assert ended.status_code == 303 and ended.headers["location"] == "/admin/login"
    assert _sign_in(web, org.org_id, totp(key, clock.now())).status_code == 303
    assert web.get("/admin/audit").status_code == 200


def test_a_session_ends_12_hours_after_sign_in_however_busy() -> None:
    clock = FakeClock()
    sessions = AdminSessions(
        store=InMemoryAdminSessionStore(),
        secrets=CsprngSecrets(),
        clock=clock,
        holds_role=lambda org_id, user_id: True,
    )
    identity = AdminIdentity(uuid4(), "root", aal=2, amr=("pwd", "otp"), auth_time=clock.now())
    session_id, _ = sessions.open(identity)
    for _ in range(71):
        clock.advance(10 * 60)
        assert sessions.resume(session_id) is not None
    clock.advance(10 * 60)
    assert sessions.resume(session_id) is None
    assert sessions.resume(session_id) is None  # and it is gone for good


def test_a_session_below_aal2_is_never_opened() -> None:
    clock = FakeClock()
    sessions = AdminSessions(
        store=InMemoryAdminSessionStore(),
        secrets=CsprngSecrets(),
        clock=clock,
        holds_role=lambda org_id, user_id: True,
    )
    identity = AdminIdentity(uuid4(), "root", aal=1, amr=("otp",), auth_time=clock.now())
    with pytest.raises(SignInRefusedError):
        sessions.open(identity)


def test_an_administrator_sees_only_their_organisation(web, container, clock, org, headers) -> None:
    other = container.create_organisation()(name="Globex")
    _seed(web, {"Authorization": f"Bearer {other.api_key}"}, clock, user="globex-user")
    _enrol(web, container, clock, org.org_id)
    dashboard = web.get("/admin").text
    assert 'class="gauge-counts" data-part="1" data-whole="1">1 of 1 users' in dashboard
    audit = web.get("/admin/audit").text
    assert "root" in audit and "globex-user" not in audit
    for action in ("appointed", "link_issued", "enrolled", "signed_in"):
        assert f"<td>administrator.{action}</td>" in audit
    filtered = web.get("/admin/audit", params={"user_id": "globex-user"}).text
    assert "No records match." in filtered


def test_the_audit_browser_filters_and_pages(web, container, clock, org, headers) -> None:
    for user in ("alice", "bob", "carol", "dave", "erin"):
        _seed(web, headers, clock, user=user)
    _enrol(web, container, clock, org.org_id)
    failures = web.get("/admin/audit", params={"outcome": "failure"}).text
    assert "<td>authentication.attempt_failed</td>" in failures
    assert "<td>enrolment.confirmed</td>" not in failures
    page = web.get("/admin/audit")
    rows = page.text.count('class="audit-row"')
    assert rows == 50 and 'rel="next"' in page.text
    nxt = re.search(r'rel="next" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    assert web.get(nxt).text.count('class="audit-row"') >= 1


def test_what_users_typed_is_escaped_on_the_pages(web, container, clock, org, headers) -> None:
    _seed(web, headers, clock, user="<img src=x onerror=alert(1)>")
    _enrol(web, container, clock, org.org_id)
    audit = web.get("/admin/audit").text
    assert "<img" not in audit and "&lt;img src=x onerror=alert(1)&gt;" in audit


def test_admin_pages_are_html_and_stay_out_of_the_openapi_schema(web) -> None:
    assert web.get("/admin", follow_redirects=False).status_code == 303
    schema = web.get("/schema/openapi.json").json()
    assert not [path for path in schema["paths"] if path.startswith("/admin")]
    assert web.get("/v1/analytics/coverage").headers["content-type"] == "application/problem+json"
