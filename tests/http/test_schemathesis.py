"""Schemathesis against a live server: no 500s, and every answer matches the published schema."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PG_URL
from tests.servers import create_org, running_server, tessera_env

BIN = Path(sys.executable).parent
CONFIG = Path(__file__).with_name("schemathesis.toml")
#: Per operation and phase; keeps one run near 15 s on two cores.
MAX_EXAMPLES = os.environ.get("TESSERA_SCHEMATHESIS_EXAMPLES", "20")

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    keys: dict[str, str]


@pytest.fixture(params=["sqlite", "postgres"])
def live_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    url = None
    if request.param == "postgres":
        url = f"{PG_URL}?schema={request.getfixturevalue('pg_schema')}"
    env = tessera_env(tmp_path / "home", url)
    # fuzzed webhook subscriptions may only name (and be delivered to) loopback: never a real host
    env["TESSERA_WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"
    org = create_org(env)
    with running_server(env) as base_url:
        yield LiveServer(base_url, {"application": org["api_key"], "admin": org["admin_api_key"]})


@pytest.mark.parametrize("role", ["application", "admin"])
def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_schema(
    live_server: LiveServer, role: str, tmp_path: Path
) -> None:
    command = [
        str(BIN / "schemathesis"),
        "--config-file",
        str(CONFIG),
        "run",
        f"{live_server.base_url}/schema/openapi.json",
        "--header",
        f"Authorization: Bearer {live_server.keys[role]}",
        "--checks",
        "all",
        "--max-examples",
        MAX_EXAMPLES,
        "--request-timeout",
        "10",
        "--generation-database",
        "none",
        "--no-color",
    ]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-20_000:]
