"""The `tessera` command line, run as a user would run it."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import b32decode, totp
from tests.servers import (
    TESSERA,
    create_org,
    free_port,
    running_server,
    tessera_env,
)


@pytest.mark.parametrize(
    "command", [[], ["serve"], ["org"], ["org", "create"], ["keys"], ["keys", "rotate"]]
)
def test_every_command_has_help(command: list[str]) -> None:
    result = subprocess.run(
        [TESSERA, *command, "--help"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("usage: tessera")


def test_org_create_prints_the_id_and_keys_once_as_json(tmp_path: Path) -> None:
    created = create_org(tessera_env(tmp_path), "Globex")
    assert created["name"] == "Globex" and re.fullmatch(r"[0-9a-f-]{36}", created["org_id"])
    assert created["api_key"].startswith("tsk_") and created["admin_api_key"] != created["api_key"]
    assert created["api_key"] not in (tmp_path / "tessera.db").read_bytes().decode("latin-1")


def test_keys_rotate_rewraps_data_keys_and_adds_a_signing_key(tmp_path: Path) -> None:
    env = tessera_env(tmp_path)
    org = create_org(env)
    auth = {"Authorization": f"Bearer {org['api_key']}"}
    with running_server(env) as base:
        body = httpx.post(
            f"{base}/v1/users/alice/enrolments", json={"method": "totp"}, headers=auth
        ).json()
        kids_before = {k["kid"] for k in httpx.get(f"{base}/.well-known/jwks.json").json()["keys"]}
    result = subprocess.run(
        [TESSERA, "keys", "rotate"], env=env, capture_output=True, text=True, check=True
    )
    assert "1 data keys re-wrapped" in result.stdout
    kek = json.loads((tmp_path / "keys" / "kek.json").read_text())
    assert len(kek["keys"]) == 2
    with running_server(env) as base:
        from datetime import UTC, datetime

        code = totp(b32decode(body["secret"]), datetime.now(UTC))
        confirmed = httpx.post(
            f"{base}/v1/enrolments/{body['enrolment_id']}/confirm",
            json={"code": code},
            headers=auth,
        )
        assert confirmed.status_code == 200
        kids_after = {k["kid"] for k in httpx.get(f"{base}/.well-known/jwks.json").json()["keys"]}
    assert kids_before < kids_after and len(kids_after) == 2


def test_serve_demo_prints_api_keys_that_work(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [TESSERA, "serve", "--demo", "--port", str(port)],
        env=tessera_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        printed = ""
        while "administrator API key" not in printed:
            printed += server.stdout.readline()  # type: ignore[union-attr]
        assert f"http://localhost:{port}" in printed
        key = re.search(r"application API key: (tsk_\S+)", printed).group(1)  # type: ignore[union-attr]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/v1/policy", headers={"Authorization": f"Bearer {key}"}
                )
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert response.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=15)
