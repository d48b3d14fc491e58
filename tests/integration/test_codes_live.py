"""A phone enrolled and used for a login against a real `tessera serve`, codes read from the
console provider's file, as the README's walkthrough does with `make run`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.servers import create_org, running_server, tessera_env

pytestmark = pytest.mark.slow


def _last_code(home: Path) -> str:
    text = json.loads((home / "messages.log").read_text("utf-8").splitlines()[-1])["text"]
    found = re.search(r"\b\d{6}\b", text)
    assert found, text
    return found.group(0)


def test_a_phone_enrols_and_signs_in_on_a_live_server(tmp_path: Path) -> None:
    env = tessera_env(tmp_path)
    org = create_org(env)
    headers = {"Authorization": f"Bearer {org['api_key']}"}
    with running_server(env) as base, httpx.Client(base_url=base, headers=headers) as client:
        enrolled = client.post(
            "/v1/users/bob/enrolments",
            json={"method": "sms", "phone_number": "+447400123456", "locale": "de"},
        )
        assert enrolled.status_code == 201, enrolled.text
        assert "Bestätigungscode" in (tmp_path / "messages.log").read_text("utf-8")
        enrolment_id = enrolled.json()["enrolment_id"]
        confirmed = client.post(
            f"/v1/enrolments/{enrolment_id}/confirm", json={"code": _last_code(tmp_path)}
        )
        assert confirmed.status_code == 200, confirmed.text
        login = client.post(
            "/v1/authentications",
            json={"user_id": "bob", "context": {"ip": "203.0.113.7", "user_agent": "test"}},
        ).json()
        sent = client.post(
            f"/v1/authentications/{login['authentication_id']}/challenges", json={"method": "sms"}
        )
        assert sent.status_code == 201, sent.text
        verified = client.post(
            f"/v1/authentications/{login['authentication_id']}/verify",
            json={"method": "sms", "code": _last_code(tmp_path)},
        )
        assert verified.status_code == 200 and verified.json()["status"] == "satisfied"
    assert (tmp_path / "messages.log").stat().st_mode & 0o777 == 0o600
