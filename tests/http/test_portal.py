"""The self-service portal over HTTP on SQLite and PostgreSQL: the one-time link, the cookie
session, CSRF, verify-first, adding, renaming and removing authenticators."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import pytest
from litestar.testing import TestClient

from entrypoints.container import Container
from entrypoints.http.app import create_app
from tests.fakes import FakeClock
from tests.helpers import b32decode, totp
from tests.softauthn import SoftAuthenticator

ORIGIN = "http://localhost:8000"  # the test server's default WebAuthn origin
COOKIE = "__Host-tessera-portal"
LINK = r"http://localhost:8000/portal/start\?token=[A-Za-z0-9_-]{43}"  # TESSERA_ISSUER's default


@pytest.fixture
def web(container: Container) -> Iterator[TestClient]:  # type: ignore[type-arg]
    """An https client: the portal's cookie is Secure, so httpx sends it only over https."""
    with TestClient(app=create_app(container), base_url="https://testserver.local") as client:
        yield client


@pytest.fixture
def key() -> SoftAuthenticator:
    return SoftAuthenticator("localhost", ORIGIN, transports=("usb",), attachment="cross-platform")


def _link(web, headers, user: str = "alice", **body: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = web.post(f"/v1/users/{user}/portal-sessions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _open(web, headers, user: str = "alice", **body: Any):  # type: ignore[no-untyped-def]
    """Follow a fresh portal link; returns the portal page (signed in)."""
    url = urlparse(_link(web, headers, user, **body)["url"])
    started = web.get(f"{url.path}?{url.query}", follow_redirects=False)
    assert started.status_code == 200, started.text
    assert '<meta http-equiv="refresh" content="0;url=/portal">' in started.text
    page = web.get("/portal")
    assert page.status_code == 200, page.text
    return page


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def _enrol_totp(web, headers, clock: FakeClock, user: str = "alice") -> tuple[str, bytes]:  # type: ignore[no-untyped-def]
    started = web.post(f"/v1/users/{user}/enrolments", json={"method": "totp"}, headers=headers)
    body = started.json()
    secret = b32decode(body["secret"])
    confirmed = web.post(
        f"/v1/enrolments/{body['enrolment_id']}/confirm",
        json={"code": totp(secret, clock.now())},
        headers=headers,
    )
    assert confirmed.status_code == 200, confirmed.text
    clock.advance(30)
    return str(body["enrolment_id"]), secret


def _api(web, path: str, csrf: str | None, body: dict[str, Any]):  # type: ignore[no-untyped-def]
    hdrs = {"X-CSRF-Token": csrf} if csrf is not None else {}
    return web.post(f"/portal/api{path}", json=body, headers=hdrs)


def _add_key(web, csrf: str, authenticator: SoftAuthenticator, kind: str = "security-key") -> str:  # type: ignore[no-untyped-def]
    started = _api(web, "/keys", csrf, {"kind": kind, "name": None})
    assert started.status_code == 201, started.text
    body = started.json()
    credential = authenticator.create(body["options"], resident=kind == "passkey")
    confirmed = _api(web, f"/keys/{body['enrolment_id']}/confirm", csrf, {"credential": credential})
    assert confirmed.status_code == 200, confirmed.text
    return str(body["enrolment_id"])


def _verify_code(web, csrf: str, enrolment_id: str, code: str, next_path: str = "/portal"):  # type: ignore[no-untyped-def]
    return web.post(
        "/portal/verify",
        data={"csrf_token": csrf, "enrolment_id": enrolment_id, "code": code, "next": next_path},
        follow_redirects=False,
    )


def _rows(web) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The portal's list: enrolment id -> the row's HTML."""
    html = web.get("/portal").text
    rows = re.findall(
        r'<li class="card authenticator" id="authenticator-([0-9a-f-]+)"(.*?)</li>', html, re.S
    )
    return dict(rows)


# --- the link -------------------------------------------------------------------------------


def test_an_application_gets_a_one_time_link_for_five_minutes(web, headers, clock) -> None:
    for body in (None, {}, {"return_url": "https://app.example/settings"}):
        response = web.post("/v1/users/alice/portal-sessions", json=body, headers=headers)
        assert response.status_code == 201, response.text
        link = response.json()
        assert set(link) == {"url", "expires_at"}
        assert re.fullmatch(LINK, link["url"]), link["url"]
        expires = datetime.fromisoformat(link["expires_at"].replace("Z", "+00:00"))
        assert expires == clock.now() + timedelta(minutes=5)
    no_body = web.post("/v1/users/alice/portal-sessions", headers=headers)
    assert no_body.status_code == 201, no_body.text


def test_a_link_needs_an_api_key_and_a_valid_body(web, headers) -> None:
    assert web.post("/v1/users/alice/portal-sessions", json={}).status_code == 401
    unknown = web.post("/v1/users/alice/portal-sessions", json={"user": "x"}, headers=headers)
    assert unknown.status_code == 422
    assert unknown.headers["content-type"].startswith("application/problem+json")
    script = web.post(
        "/v1/users/alice/portal-sessions",
        json={"return_url": "javascript:alert(1)"},
        headers=headers,
    )
    assert script.status_code == 422
    assert "return_url" in script.json()["detail"]


def test_the_link_opens_a_secure_http_only_strict_cookie_session_and_works_once(
    web, headers
) -> None:
    url = urlparse(_link(web, headers)["url"])
    target = f"{url.path}?{url.query}"
    started = web.get(target, follow_redirects=False)
    assert started.status_code == 200  # an instant client-side redirect (WCAG H76), see ADR 16
    assert started.headers["referrer-policy"] == "no-referrer"
    assert 'href="/portal"' in started.text
    set_cookie = started.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}=")
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"):
        assert flag.lower() in set_cookie.lower(), set_cookie
    assert "domain=" not in set_cookie.lower()
    page = web.get("/portal")
    assert page.status_code == 200
    assert 'id="user-id">alice<' in page.text

    again = web.get(target, follow_redirects=False)
    assert again.status_code == 404
    assert "already used or expired" in again.text


def test_an_expired_link_is_refused(web, headers, clock) -> None:
    url = urlparse(_link(web, headers)["url"])
    clock.advance(5 * 60)
    response = web.get(f"{url.path}?{url.query}", follow_redirects=False)
    assert response.status_code == 404
    assert "set-cookie" not in response.headers


def test_an_unknown_token_is_refused(web) -> None:
    assert web.get("/portal/start?token=made-up", follow_redirects=False).status_code == 404
    assert web.get("/portal/start", follow_redirects=False).status_code == 404


def test_without_a_session_the_portal_says_it_ended(web) -> None:
    response = web.get("/portal")
    assert response.status_code == 401
    assert "Your session has ended" in response.text
    api = _api(web, "/verify/options", "x", {})
    assert api.status_code == 401
    assert api.headers["content-type"].startswith("application/problem+json")


# --- the session ----------------------------------------------------------------------------


def test_the_session_ends_after_15_minutes_without_activity(web, headers, clock) -> None:
    _open(web, headers)
    clock.advance(14 * 60)
    assert web.get("/portal").status_code == 200  # activity: the idle clock restarts
    clock.advance(14 * 60)
    assert web.get("/portal").status_code == 200
    clock.advance(15 * 60)
    assert web.get("/portal").status_code == 401


def test_the_session_ends_an_hour_after_the_link_was_used(web, headers, clock) -> None:
    _open(web, headers)
    for _ in range(5):
        clock.advance(10 * 60)
        assert web.get("/portal").status_code == 200
    clock.advance(10 * 60)
    assert web.get("/portal").status_code == 401


def test_signing_out_ends_the_session(web, headers) -> None:
    page = _open(web, headers, return_url="https://app.example/home")
    assert 'href="https://app.example/home"' in page.text
    out = web.post("/portal/logout", data={"csrf_token": _csrf(page.text)})
    assert out.status_code == 200
    assert "Signed out" in out.text and "https://app.example/home" in out.text
    web.cookies.clear()
    assert web.get("/portal").status_code == 401


def test_a_new_link_replaces_the_browsers_session(web, headers) -> None:
    first = _open(web, headers)
    old_cookie = web.cookies.get(COOKIE)
    _open(web, headers, user="bob")
    assert 'id="user-id">bob<' in web.get("/portal").text
    web.cookies.set(COOKIE, old_cookie, domain="testserver.local")
    assert web.get("/portal").status_code == 401
    assert first.status_code == 200


def test_the_pages_send_security_headers_and_the_assets_come_from_the_app(web, headers) -> None:
    page = _open(web, headers)
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    assert '<html lang="en">' in page.text
    assert '<script src="/portal/static/portal.js" defer></script>' in page.text
    script = web.get("/portal/static/portal.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "parseCreationOptionsFromJSON" in script.text
    style = web.get("/portal/static/portal.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert 'style="' not in page.text  # CSP: no inline styles


def test_user_ids_are_escaped_on_the_page(web, headers) -> None:
    page = _open(web, headers, user='<img src=x onerror="alert(1)">')
    assert "<img src=x" not in page.text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page.text


# --- CSRF -----------------------------------------------------------------------------------


def test_forms_and_json_calls_without_the_csrf_token_are_refused(web, headers, clock) -> None:
    enrolment_id, _ = _enrol_totp(web, headers, clock)
    page = _open(web, headers)
    csrf = _csrf(page.text)
    for data in ({}, {"csrf_token": "forged"}):
        renamed = web.post(
            f"/portal/authenticators/{enrolment_id}/rename", data={**data, "name": "Hacked"}
        )
        assert renamed.status_code == 403
        assert "Request refused" in renamed.text
        out = web.post("/portal/logout", data=data)
        assert out.status_code == 403
    for token in (None, "forged"):
        response = _api(web, "/keys", token, {"kind": "security-key"})
        assert response.status_code == 403
        assert response.json()["type"] == "urn:tessera:problem:csrf"
    assert "Hacked" not in web.get("/portal").text
    assert web.get("/portal").status_code == 200  # the session itself is untouched
    assert csrf


def test_the_csrf_token_is_bound_to_the_session(web, headers) -> None:
    alice = _csrf(_open(web, headers).text)
    bob = _csrf(_open(web, headers, user="bob").text)
    assert alice != bob
    assert _api(web, "/keys", alice, {"kind": "security-key"}).status_code == 403


# --- adding an authenticator app -------------------------------------------------------------


def test_a_user_without_authenticators_adds_an_app_without_verifying(web, headers, clock) -> None:
    page = _open(web, headers)
    assert 'id="no-authenticators"' in page.text
    assert "Confirm it's you" not in page.text
    csrf = _csrf(page.text)
    assert web.get("/portal/add/app", follow_redirects=False).status_code == 200
    started = web.post(
        "/portal/add/app", data={"csrf_token": csrf, "name": "Phone"}, follow_redirects=False
    )
    assert started.status_code == 303, started.text
    setup_path = started.headers["location"]
    setup = web.get(setup_path)
    assert setup.status_code == 200
    assert "<svg" in setup.text
    secret = b32decode(re.search(r'id="secret">([A-Z2-7]+)<', setup.text).group(1))  # type: ignore[union-attr]

    wrong = web.post(setup_path, data={"csrf_token": csrf, "code": "000000"})
    assert wrong.status_code == 401
    assert "The code was not accepted" in wrong.text and "<svg" in wrong.text

    done = web.post(
        setup_path,
        data={"csrf_token": csrf, "code": totp(secret, clock.now())},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/portal?notice=added"
    home = web.get(done.headers["location"]).text
    assert "Authenticator added" in home
    (row,) = _rows(web).values()
    assert "Phone" in row and "Authenticator app" in row and ">Active<" in row


def test_an_app_setup_begun_by_the_application_cannot_be_finished_in_the_portal(
    web, headers
) -> None:
    started = web.post("/v1/users/alice/enrolments", json={"method": "totp"}, headers=headers)
    enrolment_id = started.json()["enrolment_id"]
    _open(web, headers)
    assert web.get(f"/portal/add/app/{enrolment_id}").status_code == 404


# --- verify first ---------------------------------------------------------------------------


def test_adding_or_removing_needs_an_existing_factor_verified_first(web, headers, clock) -> None:
    enrolment_id, secret = _enrol_totp(web, headers, clock)
    page = _open(web, headers)
    csrf = _csrf(page.text)
    assert 'id="verify-callout"' in page.text

    to_add = web.get("/portal/add/app", follow_redirects=False)
    assert to_add.status_code == 303
    assert to_add.headers["location"] == "/portal/verify?next=/portal/add/app"
    posted = web.post("/portal/add/app", data={"csrf_token": csrf}, follow_redirects=False)
    assert posted.headers["location"] == "/portal/verify?next=/portal/add/app"
    refused = _api(web, "/keys", csrf, {"kind": "passkey"})
    assert refused.status_code == 403
    assert refused.json()["verification_required"] is True
    to_remove = web.get(f"/portal/authenticators/{enrolment_id}/remove", follow_redirects=False)
    assert to_remove.headers["location"] == (
        f"/portal/verify?next=/portal/authenticators/{enrolment_id}/remove"
    )
    removed = web.post(
        f"/portal/authenticators/{enrolment_id}/remove",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert removed.headers["location"].startswith("/portal/verify")

    form = web.get("/portal/verify?next=/portal/add/app")
    assert form.status_code == 200 and 'name="code"' in form.text
    assert 'id="verify-key"' not in form.text  # no key to verify with
    wrong = _verify_code(web, csrf, enrolment_id, "000000", "/portal/add/app")
    assert wrong.status_code == 401 and "The code was not accepted" in wrong.text
    right = _verify_code(web, csrf, enrolment_id, totp(secret, clock.now()), "/portal/add/app")
    assert right.status_code == 303 and right.headers["location"] == "/portal/add/app"
    assert web.get("/portal/add/app", follow_redirects=False).status_code == 200
    assert 'id="verified-callout"' in web.get("/portal").text

    clock.advance(5 * 60)  # a verification counts for five minutes
    assert web.get("/portal/add/app", follow_redirects=False).status_code == 303


def test_the_next_page_after_verifying_stays_in_the_portal(web, headers, clock) -> None:
    enrolment_id, secret = _enrol_totp(web, headers, clock)
    csrf = _csrf(_open(web, headers).text)
    response = _verify_code(web, csrf, enrolment_id, totp(secret, clock.now()), "//evil.example")
    assert response.headers["location"] == "/portal"


def test_a_locked_authenticator_still_requires_verification(web, headers, clock, container) -> None:
    enrolment_id, _ = _enrol_totp(web, headers, clock)
    org_id = container.authenticate_api_key()(headers["Authorization"][7:]).org_id
    app = container.identity_app()
    enrolment = app.get_enrolment(__import__("uuid").UUID(enrolment_id), org_id=org_id)
    enrolment.reject_code(at=clock.now(), max_failures=1)
    app.save(enrolment)
    page = _open(web, headers)
    assert "Locked" in page.text and "ask your administrator" in page.text
    assert web.get("/portal/add/app", follow_redirects=False).status_code == 303
    verify = web.get("/portal/verify")
    assert "None of your authenticators can be used right now" in verify.text


# --- rename and remove ----------------------------------------------------------------------


def test_rename_then_remove_an_authenticator(web, headers, clock) -> None:
    enrolment_id, secret = _enrol_totp(web, headers, clock)
    csrf = _csrf(_open(web, headers).text)
    form = web.get(f"/portal/authenticators/{enrolment_id}/rename")
    assert form.status_code == 200 and 'name="name"' in form.text
    empty = web.post(
        f"/portal/authenticators/{enrolment_id}/rename", data={"csrf_token": csrf, "name": "  "}
    )
    assert empty.status_code == 422 and "cannot be empty" in empty.text
    renamed = web.post(
        f"/portal/authenticators/{enrolment_id}/rename",
        data={"csrf_token": csrf, "name": "Work phone"},
        follow_redirects=False,
    )
    assert renamed.status_code == 303 and renamed.headers["location"] == "/portal?notice=renamed"
    assert "Work phone" in _rows(web)[enrolment_id]
    listed = web.get("/v1/users/alice/enrolments", headers=headers).json()
    assert listed[0]["label"] == "Work phone"

    _verify_code(web, csrf, enrolment_id, totp(secret, clock.now()))
    confirm = web.get(f"/portal/authenticators/{enrolment_id}/remove")
    assert confirm.status_code == 200 and "your only active authenticator" in confirm.text
    removed = web.post(
        f"/portal/authenticators/{enrolment_id}/remove",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert removed.status_code == 303 and removed.headers["location"] == "/portal?notice=removed"
    assert _rows(web) == {}
    assert web.get("/v1/users/alice/enrolments", headers=headers).json() == []


def test_another_users_authenticator_is_not_found(web, headers, clock) -> None:
    bobs, _ = _enrol_totp(web, headers, clock, user="bob")
    csrf = _csrf(_open(web, headers).text)
    assert web.get(f"/portal/authenticators/{bobs}/rename").status_code == 404
    renamed = web.post(
        f"/portal/authenticators/{bobs}/rename", data={"csrf_token": csrf, "name": "Mine"}
    )
    assert renamed.status_code == 404
    assert web.get(f"/portal/authenticators/{bobs}/remove").status_code == 404
    assert web.get("/portal/authenticators/not-a-uuid/rename").status_code in (400, 404)
    assert web.get("/v1/users/bob/enrolments", headers=headers).json()[0]["label"] != "Mine"


# --- security keys and passkeys (software authenticator) ------------------------------------


def test_a_security_key_and_a_passkey_are_added_and_listed_by_type(web, headers) -> None:
    csrf = _csrf(_open(web, headers).text)
    started = _api(web, "/keys", csrf, {"kind": "security-key"})
    options = started.json()["options"]
    assert options["authenticatorSelection"]["authenticatorAttachment"] == "cross-platform"
    assert options["rp"]["id"] == "localhost"
    key = SoftAuthenticator("localhost", ORIGIN, transports=("usb",), attachment="cross-platform")
    credential = key.create(options, resident=False)
    confirmed = _api(
        web, f"/keys/{started.json()['enrolment_id']}/confirm", csrf, {"credential": credential}
    )
    assert confirmed.status_code == 200, confirmed.text
    security_key = started.json()["enrolment_id"]

    # the first authenticator is now active: the second needs a verified factor
    assert _api(web, "/keys", csrf, {"kind": "passkey"}).status_code == 403
    challenge = _api(web, "/verify/options", csrf, {})
    assert challenge.status_code == 200, challenge.text
    request_options = challenge.json()["options"]
    assert [c["id"] for c in request_options["allowCredentials"]] == [credential["id"]]
    verified = _api(
        web,
        "/verify",
        csrf,
        {
            "authentication_id": challenge.json()["authentication_id"],
            "credential": key.get(request_options),
        },
    )
    assert verified.status_code == 200, verified.text

    phone = SoftAuthenticator("localhost", ORIGIN, backup_eligible=True, backed_up=True)
    passkey_started = _api(web, "/keys", csrf, {"kind": "passkey", "name": "My phone"})
    selection = passkey_started.json()["options"]["authenticatorSelection"]
    assert selection["residentKey"] == "required"
    assert selection["userVerification"] == "required"
    passkey = passkey_started.json()["enrolment_id"]
    _api(
        web,
        f"/keys/{passkey}/confirm",
        csrf,
        {"credential": phone.create(passkey_started.json()["options"])},
    )
    platform = _api(web, "/keys", csrf, {"kind": "platform"}).json()["options"]
    assert platform["authenticatorSelection"]["authenticatorAttachment"] == "platform"
    assert platform["authenticatorSelection"]["userVerification"] == "required"

    rows = _rows(web)
    assert "Security key" in rows[security_key] and ">Active<" in rows[security_key]
    assert "Passkey (synced)" in rows[passkey] and "My phone" in rows[passkey]
    assert "Never" not in rows[security_key]  # used once, to verify


def test_a_refused_registration_shows_the_problem_and_leaves_it_pending(web, headers) -> None:
    csrf = _csrf(_open(web, headers).text)
    started = _api(web, "/keys", csrf, {"kind": "security-key"}).json()
    phishing = SoftAuthenticator("localhost", "http://localhost:9999")
    refused = _api(
        web,
        f"/keys/{started['enrolment_id']}/confirm",
        csrf,
        {"credential": phishing.create(started["options"])},
    )
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["type"] == "urn:tessera:problem:webauthn-rejected"
    assert "origin" in problem["detail"].lower()
    honest = SoftAuthenticator("localhost", ORIGIN)
    retried = _api(
        web,
        f"/keys/{started['enrolment_id']}/confirm",
        csrf,
        {"credential": honest.create(started["options"])},
    )
    assert retried.status_code == 200, retried.text


def test_a_wrong_assertion_does_not_verify_the_user(web, headers, key) -> None:
    csrf = _csrf(_open(web, headers).text)
    _add_key(web, csrf, key)
    challenge = _api(web, "/verify/options", csrf, {}).json()
    forged = key.get(challenge["options"], origin="http://localhost:9999")
    refused = _api(
        web,
        "/verify",
        csrf,
        {"authentication_id": challenge["authentication_id"], "credential": forged},
    )
    assert refused.status_code == 422
    assert "origin" in refused.json()["detail"].lower()
    assert _api(web, "/keys", csrf, {"kind": "passkey"}).status_code == 403


def test_a_login_of_another_user_cannot_verify_the_portal_user(web, headers, key) -> None:
    csrf = _csrf(_open(web, headers).text)
    _add_key(web, csrf, key)
    bobs_login = web.post(
        "/v1/authentications",
        json={"user_id": "bob", "context": {"ip": "198.51.100.7", "user_agent": "x"}},
        headers=headers,
    ).json()
    challenge = _api(web, "/verify/options", csrf, {}).json()
    response = _api(
        web,
        "/verify",
        csrf,
        {
            "authentication_id": bobs_login["authentication_id"],
            "credential": key.get(challenge["options"]),
        },
    )
    assert response.status_code == 404


def test_a_removed_key_stops_working_for_login_at_once(web, headers, key) -> None:
    csrf = _csrf(_open(web, headers).text)
    enrolment_id = _add_key(web, csrf, key)
    login = web.post(
        "/v1/authentications",
        json={"user_id": "alice", "context": {"ip": "198.51.100.7", "user_agent": "x"}},
        headers=headers,
    ).json()
    options = web.post(
        f"/v1/authentications/{login['authentication_id']}/webauthn/options",
        json={},
        headers=headers,
    ).json()
    challenge = _api(web, "/verify/options", csrf, {}).json()
    _api(
        web,
        "/verify",
        csrf,
        {
            "authentication_id": challenge["authentication_id"],
            "credential": key.get(challenge["options"]),
        },
    )
    removed = web.post(
        f"/portal/authenticators/{enrolment_id}/remove",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert removed.headers["location"] == "/portal?notice=removed"
    refused = web.post(
        f"/v1/authentications/{login['authentication_id']}/verify",
        json={"method": "webauthn", "credential": key.get(options)},
        headers=headers,
    )
    assert refused.status_code == 422


def test_an_unfinished_key_setup_is_removed_without_verifying(web, headers, clock) -> None:
    _enrol_totp(web, headers, clock)
    page = _open(web, headers)
    csrf = _csrf(page.text)
    started = web.post(
        "/v1/users/alice/enrolments", json={"method": "webauthn"}, headers=headers
    ).json()
    row = _rows(web)[started["enrolment_id"]]
    assert "Setup not finished" in row
    removed = web.post(
        f"/portal/authenticators/{started['enrolment_id']}/remove",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert removed.headers["location"] == "/portal?notice=removed"


def test_portal_changes_are_events_of_the_portal_session(
    web, headers, admin_headers, clock, container
) -> None:
    enrolment_id, secret = _enrol_totp(web, headers, clock)
    csrf = _csrf(_open(web, headers).text)
    _verify_code(web, csrf, enrolment_id, totp(secret, clock.now()))
    web.post("/portal/add/app", data={"csrf_token": csrf})
    web.post("/portal/logout", data={"csrf_token": csrf})
    app = container.identity_app()
    names = [
        type(n).__qualname__
        for n in (
            app.mapper.to_domain_event(record)
            for record in app.recorder.select_notifications(1, 1000)
        )
        if type(n).__qualname__.startswith("PortalSession.")
    ]
    assert names == [
        "PortalSession.Issued",
        "PortalSession.Redeemed",
        "PortalSession.FactorVerified",
        "PortalSession.SetupStarted",
        "PortalSession.Ended",
    ]
    # the projections take the portal's events in their stride
    trail = web.get("/v1/audit", params={"user_id": "alice"}, headers=admin_headers)
    assert trail.status_code == 200, trail.text
    assert "enrolment.started" in {r["action"] for r in trail.json()["records"]}
    coverage = web.get("/v1/analytics/coverage", headers=admin_headers)
    assert coverage.status_code == 200, coverage.text
