"""`tessera serve --demo` in headless Chromium: open the portal from /demo, create a passkey
with a CDP virtual authenticator, then sign in on /demo by user id and by passkey alone."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_admin_dashboard import CHROMIUM, CHROMIUM_ARGS, _require_browser
from tests.servers import TESSERA, free_port, tessera_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[str]:
    env = tessera_env(tmp_path / "home")
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [TESSERA, "serve", "--host", "127.0.0.1", "--port", str(port), "--demo"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert f"{base}/demo/" in log.read_text()
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_a_person_enrols_a_passkey_in_the_portal_and_signs_in_on_the_demo(
    demo_server: str, tmp_path: Path
) -> None:
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
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
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        page.goto(f"{demo_server}/demo/")
        page.get_by_label("User id", exact=True).fill("dana")
        page.get_by_role("button", name="Open the portal").click()
        page.wait_for_url(f"{demo_server}/portal")
        page.get_by_role("link", name="Add a passkey").click()
        page.get_by_role("button", name="Create passkey").click()
        page.wait_for_url(f"{demo_server}/portal?notice=added")
        page.get_by_role("link", name="Back to the application").click()
        page.wait_for_url(f"{demo_server}/demo/")

        status = page.locator("[data-demo-status]")
        page.get_by_label("User id (leave empty").fill("dana")
        page.get_by_role("button", name="Sign in").click()
        expect(status).to_have_text("Signed in as dana. The token's claims:")
        expect(page.locator("[data-demo-claims]")).to_contain_text('"amr"')

        page.get_by_label("User id (leave empty").fill("")
        page.get_by_role("button", name="Sign in").click()
        expect(status).to_have_text("Signed in as dana. The token's claims:")
        page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)

        page.get_by_label("User id (leave empty").fill("nobody")
        page.get_by_role("button", name="Sign in").click()
        expect(status).to_contain_text("Not signed in")
        browser.close()


def test_the_demo_is_absent_without_demo_mode(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/demo/")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
