"""`tessera projections rebuild analytics` and `status`, run as an operator would."""

from __future__ import annotations

import subprocess
from pathlib import Path

from entrypoints.config import Settings
from entrypoints.container import build_container
from tests.servers import TESSERA, tessera_env


def test_a_rebuilt_analytics_model_equals_the_one_built_as_events_arrived(tmp_path: Path) -> None:
    env = tessera_env(tmp_path)
    container = build_container(Settings.from_env(env))
    org = container.create_organisation()(name="Acme")
    for user in ("alice", "bob"):
        container.start_enrolment()(org_id=org.org_id, user_id=user, method="totp")
    container.analytics_follower().catch_up()
    live = container.analytics_view().dump()
    assert len(live["users"]) == 2
    container.analytics_view().close()
    container.audit_view().close()
    container.identity_app().close()

    rebuilt = subprocess.run(
        [TESSERA, "projections", "rebuild", "analytics"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "analytics: rebuilt from" in rebuilt.stdout and "audit" not in rebuilt.stdout
    again = build_container(Settings.from_env(env))
    assert again.analytics_view().dump() == live
    again.analytics_view().close()
    status = subprocess.run(
        [TESSERA, "projections", "status"], env=env, capture_output=True, text=True, check=True
    )
    lines = {line.split(":")[0]: line for line in status.stdout.splitlines()}
    assert "lag 0" in lines["analytics"] and "lag" in lines["audit"]
