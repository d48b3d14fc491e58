"""Start real `tessera serve` processes for integration tests, and stop them for sure."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

TESSERA = str(Path(sys.executable).with_name("tessera"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tessera_env(home: Path, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env["TESSERA_HOME"] = str(home)
    # Several servers and test processes share one PostgreSQL (100 connections by default).
    env["TESSERA_DB_POOL_SIZE"] = "4"
    if database_url:
        env["TESSERA_DATABASE_URL"] = database_url
    return env


def create_org(env: dict[str, str], name: str = "Acme") -> dict[str, str]:
    out = subprocess.run(
        [TESSERA, "org", "create", name, "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return dict(json.loads(out.stdout))


@contextmanager
def running_server(env: dict[str, str], *, workers: int = 1) -> Iterator[str]:
    """A `tessera serve` on a free port, ready; its output goes to a log file in TESSERA_HOME."""
    port = free_port()
    log = Path(env["TESSERA_HOME"]) / f"server-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                TESSERA,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited {process.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(base + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("server did not become ready: " + log.read_text()[-2000:])
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
