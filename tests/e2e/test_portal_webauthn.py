"""The self-service portal in headless Chromium with a CDP virtual authenticator: register a
security key and log in with it, register a passkey and log in without a user id, and see a
ceremony run on another origin refused."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import jwt
import psycopg
import pytest

from tests.conftest import PG_URL, require_postgres
from tests.e2e.test_admin_dashboard import CHROMIUM, CHROMIUM_ARGS, _require_browser
from tests.helpers import b32decode, totp
from tests.servers import create_org, running_server, tessera_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONTEXT = {"ip": "198.51.100.7", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)"}
#: RFC 8176 values for a hardware-bound key verified with UV (ADR 0015)
HARDWARE_KEY_AMR = ["hwk", "user", "mfa"]
AAL2 = "http://idmanagement.gov/ns/assurance/aal/2"

GET_ASSERTION = """async options => {
    const credential = await navigator.credentials.get(
        {publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options)});
    return credential.toJSON();
}"""


@dataclass(frozen=True)
class Served:
    base: str  # http://localhost:PORT: WebAuthn refuses 127.0.0.1 as an RP id
    org_id: str
    api_key: str

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=10
        )

    def portal_link(self, user: str, **body: Any) -> str:
        """A one-time link, pointed at this server (the issuer's default port is 8000)."""
        with self.api() as api:
            response = api.post(f"/v1/users/{user}/portal-sessions", json=body)
        assert response.status_code == 201, response.text
        url = urlparse(response.json()["url"])
        return f"{self.base}{url.path}?{url.query}"


class _Page(BaseHTTPRequestHandler):
    """Serves one HTML page for every path (another origin than Tessera's)."""

    html = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.html)))
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class OtherSite:
    """A tiny local HTTP server on another port: an application's page, or a phishing one."""

    port: int
    handler: type[_Page]

    def serve(self, html: str) -> None:
        self.handler.html = html.encode()


@pytest.fixture(scope="module")
def other_site() -> Iterator[OtherSite]:
    handler = type("Page", (_Page,), {"html": b"<!doctype html><title>Other</title>"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield OtherSite(server.server_address[1], handler)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """One `tessera serve` per store for the module's tests (each test uses its own users)."""
    _require_browser()
    schema = None
    if request.param == "postgres":
        require_postgres()
        schema = "test_" + uuid.uuid4().hex[:12]
    env = tessera_env(
        tmp_path_factory.mktemp("portal-e2e") / "home",
        f"{PG_URL}?schema={schema}" if schema else None,
    )
    try:
        org = create_org(env)
        with running_server(env) as base:
            yield Served(base.replace("127.0.0.1", "localhost"), org["org_id"], org["api_key"])
    finally:
        if schema is not None:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _with_authenticator(browser: Any, *, transport: str, resident: bool) -> tuple[Any, Any]:
    """A fresh browser context and page with one CDP virtual authenticator (UV succeeds)."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "ctap2Version": "ctap2_1",
                "transport": transport,
                "hasResidentKey": resident,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return context, page


def _claims(served: Served, token: str) -> dict[str, Any]:
    """The access token's claims, its signature checked against the published keys."""
    header = jwt.get_unverified_header(token)
    jwks = httpx.get(f"{served.base}/.well-known/jwks.json", timeout=10).json()
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    return dict(
        jwt.decode(
            token,
            jwt.PyJWK(key).key,
            algorithms=["RS256"],
            audience=f"urn:tessera:org:{served.org_id}",
        )
    )


def _login_options(served: Served, user: str | None) -> tuple[str, dict[str, Any]]:
    """What an application does first: start a login and ask for its WebAuthn options."""
    body: dict[str, Any] = {"context": CONTEXT}
    if user is not None:
        body["user_id"] = user
    with served.api() as api:
        started = api.post("/v1/authentications", json=body)
        assert started.status_code == 201, started.text
        authentication_id = started.json()["authentication_id"]
        options = api.post(f"/v1/authentications/{authentication_id}/webauthn/options", json={})
        assert options.status_code == 200, options.text
    return authentication_id, options.json()


def _verify(served: Served, authentication_id: str, credential: dict[str, Any]) -> httpx.Response:
    with served.api() as api:
        return api.post(
            f"/v1/authentications/{authentication_id}/verify",
            json={"method": "webauthn", "credential": credential},
        )


def _keep(shot: Path) -> None:
    if os.environ.get("TESSERA_E2E_ARTIFACTS"):
        shutil.copy(shot, Path(os.environ["TESSERA_E2E_ARTIFACTS"]) / shot.name)


def _code(key: bytes, steps: int = 0) -> str:
    return totp(key, datetime.now(UTC) + timedelta(seconds=30 * steps))


def test_a_security_key_registered_in_the_portal_signs_the_user_in(
    served: Served, browser: Any, other_site: OtherSite, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    # The application's own page (another site: 127.0.0.1) sends the user to the portal.
    link = served.portal_link("alice", return_url=f"http://127.0.0.1:{other_site.port}/")
    other_site.serve(f'<!doctype html><a id="manage" href="{link}">Manage sign-in methods</a>')
    context, page = _with_authenticator(browser, transport="usb", resident=False)
    try:
        page.goto(f"http://127.0.0.1:{other_site.port}/")
        page.click("#manage")
        page.wait_for_url(f"{served.base}/portal")
        expect(page.get_by_role("heading", name="Your sign-in methods")).to_be_visible()
        expect(page.locator("#no-authenticators")).to_be_visible()

        # the first authenticator needs no earlier factor
        page.get_by_role("link", name="Add a security key").click()
        page.wait_for_url(f"{served.base}/portal/add/security-key")
        page.get_by_label("Name").fill("Blue key")
        page.get_by_role("button", name="Register security key").click()
        page.wait_for_url(f"{served.base}/portal?notice=added")
        key_row = page.locator("li.authenticator", has_text="Blue key")
        expect(key_row).to_contain_text("Security key")
        expect(key_row).to_contain_text("Active")

        # a second one: verify with the key first (WebAuthn in the browser), then add an app
        page.get_by_role("link", name="Add an authenticator app").click()
        page.wait_for_url(f"{served.base}/portal/verify?next=/portal/add/app")
        expect(page.locator("#code")).to_have_count(0)
        page.get_by_role("button", name="Use my security key or passkey").click()
        page.wait_for_url(f"{served.base}/portal/add/app")
        page.get_by_label("Name").fill("Phone")
        page.get_by_role("button", name="Show the QR code").click()
        expect(page.locator(".qr svg")).to_be_visible()
        qr_page = tmp_path / "portal-add-app.png"
        page.screenshot(path=str(qr_page), full_page=True)
        _keep(qr_page)
        secret = b32decode(page.locator("#secret").text_content() or "")
        page.get_by_label("Code from the app").fill("000000")
        page.get_by_role("button", name="Finish adding").click()
        expect(page.locator("#setup-error")).to_contain_text("The code was not accepted")
        page.get_by_label("Code from the app").fill(_code(secret))
        page.get_by_role("button", name="Finish adding").click()
        page.wait_for_url(f"{served.base}/portal?notice=added")
        expect(page.locator("li.authenticator")).to_have_count(2)
        expect(page.locator("li.authenticator", has_text="Phone")).to_contain_text(
            "Authenticator app"
        )
        expect(page.locator("li.authenticator", has_text="Blue key")).not_to_contain_text("Never")

        desktop = tmp_path / "portal-desktop.png"
        page.screenshot(path=str(desktop), full_page=True)
        _keep(desktop)
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        phone = tmp_path / "portal-phone.png"
        page.screenshot(path=str(phone), full_page=True)
        _keep(phone)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the portal is {width}px wide on a 390px screen"
        assert desktop.stat().st_size > 10_000 and phone.stat().st_size > 10_000
        # keyboard: the skip link comes first, then the header's controls
        page.keyboard.press("Tab")
        expect(page.locator("a.skip")).to_be_focused()
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Back to the application")).to_be_focused()

        # an application signs alice in with the key (run on the server's origin)
        authentication_id, options = _login_options(served, "alice")
        assert len(options["allowCredentials"]) == 1
        credential = page.evaluate(GET_ASSERTION, options)
        verified = _verify(served, authentication_id, credential)
        assert verified.status_code == 200, verified.text
        assert verified.json()["status"] == "satisfied"
        claims = _claims(served, verified.json()["access_token"])
        assert claims["sub"] == "alice"
        assert claims["amr"] == HARDWARE_KEY_AMR
        assert claims["acr"] == AAL2  # `none` attestation: not attested, so not AAL3
    finally:
        context.close()


def test_a_passkey_registered_in_the_portal_signs_in_without_a_user_id(
    served: Served, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    context, page = _with_authenticator(browser, transport="internal", resident=True)
    try:
        page.goto(served.portal_link("bob"))
        page.wait_for_url(f"{served.base}/portal")
        page.get_by_role("link", name="Add a passkey").click()
        page.get_by_role("button", name="Create passkey").click()
        page.wait_for_url(f"{served.base}/portal?notice=added")
        expect(page.locator("li.authenticator", has_text="Passkey")).to_contain_text("Active")
        add_key = tmp_path / "portal-verify.png"
        page.goto(f"{served.base}/portal/verify?next=/portal/add/passkey")
        page.screenshot(path=str(add_key), full_page=True)
        _keep(add_key)

        authentication_id, options = _login_options(served, None)
        assert options.get("allowCredentials", []) == []
        assert options["userVerification"] == "required"
        page.goto(f"{served.base}/portal")
        credential = page.evaluate(GET_ASSERTION, options)
        assert credential["response"]["userHandle"]
        verified = _verify(served, authentication_id, credential)
        assert verified.status_code == 200, verified.text
        claims = _claims(served, verified.json()["access_token"])
        assert claims["sub"] == "bob"  # found from the passkey's user handle
        assert "user" in claims["amr"] and "mfa" in claims["amr"]
    finally:
        context.close()


def test_a_ceremony_on_another_origin_is_refused_and_the_login_stays_open(
    served: Served, browser: Any, other_site: OtherSite
) -> None:
    from playwright.sync_api import expect

    context, page = _with_authenticator(browser, transport="internal", resident=True)
    try:
        page.goto(served.portal_link("carol"))
        page.get_by_role("link", name="Add this device").click()
        page.get_by_role("button", name="Use this device").click()
        page.wait_for_url(f"{served.base}/portal?notice=added")
        expect(page.locator("li.authenticator")).to_contain_text("This device's biometrics")

        authentication_id, options = _login_options(served, "carol")
        # Same host, another port: a different origin, which the RP id `localhost` still covers,
        # so the browser runs the ceremony and only Tessera can tell.
        other_site.serve("<!doctype html><title>Look-alike</title><p>Sign in</p>")
        page.goto(f"http://localhost:{other_site.port}/")
        phished = page.evaluate(GET_ASSERTION, options)
        refused = _verify(served, authentication_id, phished)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        problem = refused.json()
        assert problem["type"] == "urn:tessera:problem:webauthn-rejected"
        assert "origin" in problem["detail"].lower()

        # the refusal left the login pending with the same challenge
        page.goto(f"{served.base}/portal")
        genuine = page.evaluate(GET_ASSERTION, options)
        accepted = _verify(served, authentication_id, genuine)
        assert accepted.status_code == 200, accepted.text
        assert _claims(served, accepted.json()["access_token"])["sub"] == "carol"
    finally:
        context.close()


def test_a_rejected_registration_shows_the_problem_on_the_page(
    served: Served, browser: Any
) -> None:
    from playwright.sync_api import expect

    context, page = _with_authenticator(browser, transport="usb", resident=False)
    try:
        page.goto(served.portal_link("dave"))
        page.get_by_role("link", name="Add a security key").click()
        page.get_by_role("button", name="Register security key").click()
        page.wait_for_url(f"{served.base}/portal?notice=added")
        # the same key again: the browser refuses (excludeCredentials) and the page says so
        page.get_by_role("link", name="Add a security key").click()
        page.wait_for_url(f"{served.base}/portal/verify?next=/portal/add/security-key")
        page.get_by_role("button", name="Use my security key or passkey").click()
        page.wait_for_url(f"{served.base}/portal/add/security-key")
        page.get_by_role("button", name="Register security key").click()
        alert = page.locator("[data-error]")
        expect(alert).to_be_visible()
        expect(alert).to_contain_text("already registered")
        expect(alert).to_be_focused()
        expect(page.get_by_role("button", name="Register security key")).to_be_enabled()
    finally:
        context.close()
