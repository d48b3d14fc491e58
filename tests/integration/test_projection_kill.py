"""`tessera projections run` killed with SIGKILL mid-batch resumes without double counting."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from domain.account import Account
from domain.authentication import AuthenticationSession
from domain.enrolment import Enrolment
from entrypoints.config import Settings
from entrypoints.container import build_container
from tests.conftest import PG_URL
from tests.servers import TESSERA, tessera_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

USERS = 500  # 8 events each: about 80 batches of 50 per read model
KILL_AFTER = 250  # events applied to each model before the kill (five batches)


def _history(container: Any) -> int:
    """Organisations, then users with an enrolment and a failed-then-satisfied login,
    saved many aggregates at a time; the event store's head."""
    app = container.identity_app()
    orgs = [container.create_organisation()(name=f"Org {i}").org_id for i in range(3)]
    at = datetime(2026, 11, 1, tzinfo=UTC)
    batch: list[Any] = []
    for i in range(USERS):
        org_id = orgs[i % len(orgs)]
        at += timedelta(minutes=7)
        account = Account(org_id=org_id, user_id=f"user-{i}")
        enrolment = Enrolment.start(
            enrolment_id=uuid.uuid4(),
            org_id=org_id,
            user_id=account.user_id,
            method="hotp" if i % 4 == 0 else "totp",
            label="phone",
            secret_ref="test:no-secret",
            at=at,
        )
        enrolment.confirm(0, at=at)
        account.add_enrolment(enrolment.id)
        session = AuthenticationSession.start(
            session_id=uuid.uuid4(),
            org_id=org_id,
            user_id=account.user_id,
            context={"ip": "192.0.2.1", "user_agent": "test"},
            operation=None,
            risk={"level": "low", "score": 0.1},
            required_aal=2,
            methods=[enrolment.method],
            primary_factor_verified=True,
            max_attempts=5,
            ttl=timedelta(minutes=5),
            at=at,
        )
        session.fail_attempt(enrolment.method, at=at)
        session.verify_factor(enrolment.method, enrolment.id, at=at)
        session.satisfy(token_id=uuid.uuid4().hex, token_ttl=timedelta(minutes=5), at=at)
        batch += [account, enrolment, session]
        if len(batch) >= 300:
            app.save(*batch)
            batch = []
    if batch:
        app.save(*batch)
    return int(app.recorder.max_notification_id() or 0)


def _positions(schema: str) -> dict[str, int]:
    with psycopg.connect(PG_URL) as conn:
        return {
            name: int(
                conn.execute(
                    sql.SQL(
                        "SELECT COALESCE(MAX(notification_id), 0) FROM {} "
                        "WHERE application_name = 'identity'"  # not eventsourcing's migration row
                    ).format(sql.Identifier(schema, f"{name}_tracking"))
                ).fetchone()[0]  # type: ignore[index]
            )
            for name in ("audit", "analytics")
        }


def _audit_rows(schema: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(PG_URL) as conn:
        return conn.execute(
            sql.SQL("SELECT org_id, seq, position, hash FROM {} ORDER BY org_id, seq").format(
                sql.Identifier(schema, "audit_records")
            )
        ).fetchall()


def _run(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [TESSERA, "projections", "run", "--batch-size", "50", "--interval", "0.05"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def test_a_follower_killed_mid_batch_resumes_and_equals_a_fresh_rebuild(
    pg_schema: str, tmp_path: Path
) -> None:
    env = tessera_env(tmp_path, f"{PG_URL}?schema={pg_schema}")
    container = build_container(Settings.from_env(env))
    head = _history(container)
    container.audit_view()
    container.analytics_view()  # tables exist before the follower polls them
    container.identity_app().close()
    log = tmp_path / "projections.log"

    first = _run(env, log)
    try:
        deadline = time.monotonic() + 20
        while True:
            positions = _positions(pg_schema)
            if all(KILL_AFTER <= p < head for p in positions.values()):
                break  # both models are part-way: batches are being applied
            assert first.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no progress to kill in: {positions}"
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    killed_at = _positions(pg_schema)
    assert all(p < head for p in killed_at.values()), killed_at

    second = _run(env, log)
    try:
        deadline = time.monotonic() + 30
        while _positions(pg_schema) != {"audit": head, "analytics": head}:
            assert second.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"lag left: {_positions(pg_schema)}"
            time.sleep(0.1)
    finally:
        second.terminate()
        second.wait(timeout=15)

    status = subprocess.run(
        [TESSERA, "projections", "status"], env=env, capture_output=True, text=True, check=True
    )
    lines = {line.split(":")[0]: line for line in status.stdout.splitlines()}
    assert "lag 0" in lines["audit"] and "lag 0" in lines["analytics"], status.stdout
    verified = subprocess.run(
        [TESSERA, "audit", "verify"], env=env, capture_output=True, text=True, check=False
    )
    assert verified.returncode == 0, verified.stdout
    assert f"intact: {head} records" in verified.stdout  # one record per event, none twice

    resumed_audit = _audit_rows(pg_schema)
    reader = build_container(Settings.from_env(env))
    resumed_analytics = reader.analytics_view().dump()
    reader.analytics_view().close()
    reader.audit_view().close()
    subprocess.run(
        [TESSERA, "projections", "rebuild"], env=env, capture_output=True, timeout=60, check=True
    )
    rebuilt = build_container(Settings.from_env(env))
    assert rebuilt.analytics_view().dump() == resumed_analytics  # counts and change log
    assert _audit_rows(pg_schema) == resumed_audit  # same records, seqs and hashes
    rebuilt.analytics_view().close()
    rebuilt.audit_view().close()


def test_a_rebuild_in_processes_killed_mid_way_is_finished_by_the_follower(
    pg_schema: str, tmp_path: Path
) -> None:
    """The rebuild's parent is SIGKILLed: its workers stop at their next batch, each model
    keeps what it committed, and `projections run` completes both without double counting."""
    env = tessera_env(tmp_path, f"{PG_URL}?schema={pg_schema}")
    container = build_container(Settings.from_env(env))
    head = _history(container)
    container.audit_view()
    container.analytics_view()
    container.identity_app().close()
    script = (
        "from entrypoints.config import Settings\n"
        "from entrypoints.rebuild import rebuild\n"
        "rebuild(Settings.from_env(), parallel=True, batch_size=50)\n"
    )
    rebuilding = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 30
        # Kill once a model is well into its rebuild; the other may be anywhere (its worker
        # starts a moment later, or it may be done), which the checks below allow for.
        while not any(KILL_AFTER <= p < head for p in _positions(pg_schema).values()):
            assert rebuilding.poll() is None, "the rebuild ended before it could be killed"
            assert time.monotonic() < deadline, f"no progress: {_positions(pg_schema)}"
            time.sleep(0.01)
        rebuilding.send_signal(signal.SIGKILL)
        rebuilding.wait(timeout=10)
    finally:
        if rebuilding.poll() is None:
            rebuilding.kill()
            rebuilding.wait()
    time.sleep(1.5)  # workers notice at their next batch that their parent is gone
    stopped = _positions(pg_schema)
    time.sleep(1)
    assert _positions(pg_schema) == stopped, "the workers kept going"
    assert any(p < head for p in stopped.values()), stopped  # one was cut off mid-way

    follower = _run(env, tmp_path / "projections.log")
    try:
        deadline = time.monotonic() + 30
        while _positions(pg_schema) != {"audit": head, "analytics": head}:
            assert follower.poll() is None
            assert time.monotonic() < deadline, f"lag left: {_positions(pg_schema)}"
            time.sleep(0.1)
    finally:
        follower.terminate()
        follower.wait(timeout=15)
    finished_audit = _audit_rows(pg_schema)
    reader = build_container(Settings.from_env(env))
    finished_analytics = reader.analytics_view().dump()
    reader.analytics_view().close()
    reader.audit_view().close()
    subprocess.run(
        [TESSERA, "projections", "rebuild"], env=env, capture_output=True, timeout=60, check=True
    )
    rebuilt = build_container(Settings.from_env(env))
    assert rebuilt.analytics_view().dump() == finished_analytics
    assert _audit_rows(pg_schema) == finished_audit and len(finished_audit) == head
    rebuilt.analytics_view().close()
    rebuilt.audit_view().close()
