"""`tessera projections`, `tessera audit` and `tessera replay`, run as an operator would."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.servers import TESSERA, create_org, tessera_env


def _tessera(
    env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TESSERA, *args], env=env, capture_output=True, text=True, timeout=60, check=check
    )


@pytest.mark.parametrize(
    "command",
    [
        ["projections"],
        ["projections", "run"],
        ["projections", "rebuild"],
        ["projections", "status"],
        ["audit"],
        ["audit", "verify"],
        ["audit", "export"],
        ["replay"],
    ],
)
def test_every_new_command_has_help(command: list[str]) -> None:
    result = subprocess.run(
        [TESSERA, *command, "--help"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("usage: tessera")


def test_rebuild_verify_tamper_export_and_replay_on_sqlite(tmp_path: Path) -> None:
    env = tessera_env(tmp_path)
    first = create_org(env, "Acme")
    time.sleep(0.05)
    between = datetime.now(UTC)
    time.sleep(0.05)
    create_org(env, "Globex")

    rebuilt = _tessera(env, "projections", "rebuild")
    assert "rebuilt from 8 events" in rebuilt.stdout and "8/8" in rebuilt.stderr
    assert "lag 0" in _tessera(env, "projections", "status").stdout
    assert "intact: 8 records in 2 organisations" in _tessera(env, "audit", "verify").stdout

    lines = _tessera(env, "audit", "export", "--org", first["org_id"]).stdout.splitlines()
    assert [json.loads(line)["action"] for line in lines] == [
        "organisation.created",
        "policy.created",
        "api_key.issued",
        "api_key.issued",
    ]
    table = _tessera(env, "audit", "export", "--format", "csv", "--to", between.isoformat())
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert len(rows) == 4 and {r["org_id"] for r in rows} == {first["org_id"]}

    replayed = _tessera(env, "replay", "--until", between.isoformat())
    assert "4 events" in replayed.stdout
    copy = replayed.stdout.rsplit("SQLite file ", 1)[1].strip()
    with sqlite3.connect(copy) as db:
        assert db.execute("SELECT COUNT(*) FROM audit_records").fetchone()[0] == 4

    with sqlite3.connect(tmp_path / "tessera.audit.db") as db:
        db.execute(
            "UPDATE audit_records SET user_agent = 'edited' WHERE org_id = ? AND seq = 3",
            (first["org_id"],),
        )
    broken = _tessera(env, "audit", "verify", check=False)
    assert broken.returncode == 1
    assert f"organisation {first['org_id']}: chain broken at seq 3 (position 3)" in broken.stdout
