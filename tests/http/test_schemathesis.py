"""Schemathesis against a live server: no 500s, and every answer matches the published schema."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PG_URL

BIN = Path(sys.executable).parent
CONFIG = Path(__file__).with_name("schemathesis.toml")
#: Per operation and phase; keeps one run near 15 s on two cores.
MAX_EXAMPLES = os.environ.get("TESSERA_SCHEMATHESIS_EXAMPLES", "20")

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    keys: dict[str, str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_ready(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"the server was not ready within 30 s:\n{log.read_text()}")


@pytest.fixture(params=["sqlite", "postgres"])
def live_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env["TESSERA_HOME"] = str(tmp_path / "home")
    if request.param == "postgres":
        schema = request.getfixturevalue("pg_schema")
        env["TESSERA_DATABASE_URL"] = f"{PG_URL}?schema={schema}"
    created = subprocess.run(
        [BIN / "tessera", "org", "create", "Acme", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    org = json.loads(created.stdout)
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [BIN / "tessera", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_ready(f"{base_url}/ready", server, log)
        yield LiveServer(base_url, {"application": org["api_key"], "admin": org["admin_api_key"]})
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


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
