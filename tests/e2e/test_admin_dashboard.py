"""The admin area in a real browser: enrol, sign in, and read the seeded numbers off the charts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI
from tests.helpers import b32decode, totp
from tests.servers import TESSERA, create_org, running_server, tessera_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
#: LIBRARIES.md §4: Debian's chromium, nothing downloaded, no network beyond loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
PASSWORD = "a long admin passphrase"
CONTEXT = {"ip": "198.51.100.7", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)"}


def _require_browser() -> None:
    """In CI a missing browser fails the test; elsewhere it is skipped with the fix."""
    missing = []
    if not os.path.exists(CHROMIUM):
        missing.append(f"{CHROMIUM} (make system-deps installs Debian's chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if not missing:
        return
    if IN_CI:
        pytest.fail("browser tests must run in CI; missing: " + ", ".join(missing))
    pytest.skip("needs " + ", ".join(missing))


def _code(key: bytes, steps: int = 0) -> str:
    return totp(key, datetime.now(UTC) + timedelta(seconds=30 * steps))


def _seed(base: str, api_key: str) -> None:
    """alice and bob enrol; alice signs in, bob types a wrong code."""
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as api:
        for user, good in (("alice", True), ("bob", False)):
            started = api.post(f"/v1/users/{user}/enrolments", json={"method": "totp"})
            body = started.json()
            key = b32decode(body["secret"])
            confirmed = api.post(
                f"/v1/enrolments/{body['enrolment_id']}/confirm", json={"code": _code(key)}
            )
            assert confirmed.status_code == 200, confirmed.text
            code = _code(key, 1) if good else "000000"
            login = api.post(
                "/v1/authentications",
                json={"user_id": user, "context": CONTEXT, "method": "totp", "code": code},
            )
            assert login.status_code == (201 if good else 401), login.text


def _admin_link(env: dict[str, str], org_id: str, base: str, *, user_id: str = "root") -> str:
    out = subprocess.run(
        [TESSERA, "admin", "add", org_id, user_id, "--base-url", base, "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return str(json.loads(out.stdout)["enrolment_url"])


def test_an_administrator_enrols_signs_in_and_the_dashboard_shows_the_seeded_numbers(
    tmp_path: Path,
) -> None:
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    env = tessera_env(tmp_path / "home")
    org = create_org(env)
    with running_server(env) as served:
        base = served.replace("127.0.0.1", "localhost")  # a secure context for Secure cookies
        _seed(base, org["api_key"])
        link = _admin_link(env, org["org_id"], base)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
                page.goto(link)
                expect(page.locator(".qr svg")).to_be_visible()
                key = b32decode(page.locator("#secret").text_content() or "")
                page.get_by_label("New password").fill(PASSWORD)
                page.get_by_label("Repeat the password").fill(PASSWORD)
                page.get_by_label("Code from your authenticator app").fill(_code(key))
                page.get_by_role("button", name="Finish and sign in").click()
                page.wait_for_url(f"{base}/admin")

                page.get_by_role("button", name="Sign out").click()
                page.wait_for_url(f"{base}/admin/login")
                page.get_by_label("Organisation id").fill(org["org_id"])
                page.get_by_label("User id").fill("root")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_label("Code from your authenticator app").fill(_code(key, 1))
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(f"{base}/admin")

                expect(page.locator("svg.chart")).to_have_count(5)
                shot = tmp_path / "dashboard.png"
                page.screenshot(path=str(shot), full_page=True)
                if os.environ.get("TESSERA_E2E_ARTIFACTS"):
                    shutil.copy(shot, Path(os.environ["TESSERA_E2E_ARTIFACTS"]) / shot.name)
                assert shot.stat().st_size > 10_000

                # alice, bob and the administrator each added one TOTP authenticator
                total = page.locator('#enrolments text.total[data-series="totp"]')
                assert total.text_content() == "totp: 3"
                # alice's good code, bob's wrong one, the administrator's sign-in
                rate = page.locator('#success-rate text.bar-value[data-label="totp"]')
                assert rate.text_content() == "67% (2 of 3)"
                assert page.locator("#coverage text.gauge-percent").text_content() == "100%"
                assert page.locator("#coverage text.gauge-counts").text_content() == "3 of 3 users"
                low = page.locator('#risk text.bar-value[data-label="low"]')
                assert low.text_content() == "3"
                assert page.locator("#stat-users").text_content() == "3"

                page.set_viewport_size({"width": 390, "height": 844})  # a phone
                page.reload()
                phone = tmp_path / "dashboard-phone.png"
                page.screenshot(path=str(phone), full_page=True)
                if os.environ.get("TESSERA_E2E_ARTIFACTS"):
                    shutil.copy(phone, Path(os.environ["TESSERA_E2E_ARTIFACTS"]) / phone.name)
                overflow = page.evaluate("document.documentElement.scrollWidth")
                assert overflow <= 390, f"the page is {overflow}px wide on a 390px screen"

                page.get_by_role("link", name="Audit trail").click()
                expect(page.locator("tr.audit-row").first).to_be_visible()
                assert page.locator("tr.audit-row", has_text="bob").count() >= 1

                # another administrator, appointed from the command line, removed with a button
                _admin_link(env, org["org_id"], base, user_id="carol")
                page.set_viewport_size({"width": 1366, "height": 768})
                page.get_by_role("link", name="Administrators").click()
                expect(page.locator("tr.admin-row")).to_have_count(2)
                admins = tmp_path / "administrators.png"
                page.screenshot(path=str(admins), full_page=True)
                if os.environ.get("TESSERA_E2E_ARTIFACTS"):
                    shutil.copy(admins, Path(os.environ["TESSERA_E2E_ARTIFACTS"]) / admins.name)
                page.get_by_role("button", name="Remove carol").click()
                expect(page.locator("#removed")).to_contain_text("carol is no longer")
                expect(page.locator("tr.admin-row")).to_have_count(1)
                assert "you" in (page.locator("tr.admin-row").text_content() or "")
            finally:
                browser.close()
