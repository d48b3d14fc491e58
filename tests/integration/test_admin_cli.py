"""`tessera admin add` and `remove`: a link on the issuer's URL, removal once, clear errors."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from tests.servers import TESSERA, create_org, tessera_env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TESSERA, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_admin_add_prints_a_one_time_link_on_the_issuer_and_refuses_unknown_organisations(
    tmp_path: Path,
) -> None:
    env = tessera_env(tmp_path) | {"TESSERA_ISSUER": "https://mfa.example.test"}
    org = create_org(env)
    added = _run(env, "admin", "add", org["org_id"], "root")
    assert added.returncode == 0, added.stderr
    assert "https://mfa.example.test/admin/enrol?token=" in added.stdout
    unknown = _run(env, "admin", "add", str(uuid.uuid4()), "root")
    assert unknown.returncode == 1 and "not found" in unknown.stderr.lower()
    assert _run(env, "admin", "add", "--help").returncode == 0


def test_admin_remove_takes_the_role_away_once_and_admin_add_gives_it_back(
    tmp_path: Path,
) -> None:
    env = tessera_env(tmp_path)
    org = create_org(env)
    assert _run(env, "admin", "add", org["org_id"], "root").returncode == 0
    removed = _run(env, "admin", "remove", org["org_id"], "root")
    assert removed.returncode == 0, removed.stderr
    assert "root is no longer an administrator" in removed.stdout
    again = _run(env, "admin", "remove", org["org_id"], "root")
    assert again.returncode == 1 and "not found" in again.stderr.lower()
    assert _run(env, "admin", "remove", org["org_id"], "nobody").returncode == 1
    assert _run(env, "admin", "add", org["org_id"], "root").returncode == 0
    assert _run(env, "admin", "remove", "--help").returncode == 0
