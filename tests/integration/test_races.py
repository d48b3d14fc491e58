"""A code is accepted at most once when requests race across two PostgreSQL-backed servers."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_URL
from tests.helpers import b32decode, totp
from tests.servers import create_org, running_server, tessera_env

pytestmark = pytest.mark.slow

USERS = 12
RACERS = 8


def test_the_same_code_racing_on_two_servers_succeeds_exactly_once(
    tmp_path: Path, pg_schema: str
) -> None:
    env = tessera_env(tmp_path, f"{PG_URL}?schema={pg_schema}")
    org = create_org(env)
    auth = {"Authorization": f"Bearer {org['api_key']}"}
    with running_server(env) as first, running_server(env) as second:
        keys = {}
        with httpx.Client(base_url=first, headers=auth, timeout=30) as client:
            for n in range(USERS):
                body = client.post(f"/v1/users/u{n}/enrolments", json={"method": "totp"}).json()
                keys[f"u{n}"] = key = b32decode(body["secret"])
                # confirm with the previous step's code, so the current one is still unused
                now = datetime.now(UTC).timestamp()
                code = totp(key, datetime.fromtimestamp(now - 30, UTC))
                confirmed = client.post(
                    f"/v1/enrolments/{body['enrolment_id']}/confirm", json={"code": code}
                )
                assert confirmed.status_code == 200, confirmed.text

        clients = [httpx.Client(base_url=b, headers=auth, timeout=30) for b in (first, second)]
        barrier = threading.Barrier(USERS * RACERS)

        def race(n: int, racer: int) -> tuple[str, int, str]:
            user = f"u{n}"
            code = totp(keys[user], datetime.now(UTC))
            barrier.wait()
            response = clients[racer % 2].post(
                "/v1/authentications",
                json={
                    "user_id": user,
                    "context": {"ip": "192.0.2.1", "user_agent": "race"},
                    "method": "totp",
                    "code": code,
                },
            )
            return user, response.status_code, response.json().get("status", "")

        try:
            with ThreadPoolExecutor(max_workers=USERS * RACERS) as pool:
                results = list(
                    pool.map(
                        lambda a: race(*a), [(n, r) for n in range(USERS) for r in range(RACERS)]
                    )
                )
        finally:
            for c in clients:
                c.close()

    for n in range(USERS):
        mine = [(status, state) for user, status, state in results if user == f"u{n}"]
        winners = [m for m in mine if m == (201, "satisfied")]
        assert len(winners) == 1, mine
        assert all(status in (201, 401, 429) for status, _ in mine), mine
        assert not any(
            status == 201 and state == "satisfied"
            for status, state in mine
            if (status, state) not in winners
        )
