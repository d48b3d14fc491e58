"""WebAuthn assertion verification rate: the adapter alone per algorithm, then whole logins
(start, options, verify) through the use cases on PostgreSQL. Prints figures.

    python -m bench.webauthn [--seconds 5] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
import uuid

from adapters.webauthn import PyWebAuthnCeremonies
from application.ports import RelyingParty
from tests.softauthn import SoftAuthenticator, unb64u

ORIGIN = "http://localhost:8000"
RP = RelyingParty(rp_id="localhost", name="bench", origins=(ORIGIN,))
PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class _NoMetadata:
    serial = 0

    def lookup(self, aaguid: str) -> None:
        return None


def adapter_rate(algorithm: str, seconds: float) -> float:
    """Assertions verified per second on one core: parsing, client data, flags, signature."""
    ceremonies = PyWebAuthnCeremonies()
    key = SoftAuthenticator("localhost", ORIGIN, algorithm=algorithm)
    challenge = secrets.token_bytes(32)
    creation = ceremonies.creation_options(
        rp=RP,
        user_handle=uuid.uuid4().bytes,
        user_name="bench",
        display_name="bench",
        challenge=challenge,
        exclude=[],
        attachment=None,
        resident_key="preferred",
        user_verification="preferred",
        attestation="none",
        timeout_ms=60_000,
    )
    registered = ceremonies.verify_registration(
        key.create(creation),
        rp=RP,
        challenge=challenge,
        require_user_verification=False,
        metadata=_NoMetadata(),
    )
    request = ceremonies.request_options(
        rp=RP, challenge=challenge, allow=[], user_verification="preferred", timeout_ms=60_000
    )
    assertions = [key.get(request) for _ in range(200)]
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for assertion in assertions:
            ceremonies.verify_authentication(
                assertion,
                rp=RP,
                challenge=unb64u(request["challenge"]),
                public_key=registered.public_key,
                require_user_verification=False,
            )
        done += len(assertions)
    return done / (time.perf_counter() - started)


def login_rate(database_url: str, seconds: float) -> tuple[float, float]:
    """Whole logins per second, and the median milliseconds of one, in one process."""
    from application.authentications import Caller
    from application.ports import RequestContext
    from entrypoints.config import Settings
    from entrypoints.container import build_container

    with tempfile.TemporaryDirectory() as home:
        schema = f"bench_webauthn_{uuid.uuid4().hex[:8]}"
        env = {
            "TESSERA_HOME": home,
            "TESSERA_DATABASE_URL": f"{database_url}?schema={schema}"
            if database_url.startswith("postgres")
            else database_url,
            "TESSERA_PROJECTIONS": "external",
        }
        container = build_container(Settings.from_env(env))
        try:
            org = container.create_organisation()(name="bench")
            caller = Caller(org_id=org.org_id, client_id="bench")
            key = SoftAuthenticator("localhost", ORIGIN)
            started = container.start_webauthn_enrolment()(org_id=org.org_id, user_id="alice")
            container.confirm_webauthn_enrolment()(
                org_id=org.org_id,
                enrolment_id=started.enrolment_id,
                credential=key.create(started.options),
            )
            context = RequestContext(ip="203.0.113.7", user_agent="bench")
            timings: list[float] = []
            begun = time.perf_counter()
            while time.perf_counter() - begun < seconds:
                t0 = time.perf_counter()
                session = container.start_authentication()(
                    caller=caller, user_id="alice", context=context
                ).session
                options = container.webauthn_login_options()(
                    caller=caller, authentication_id=session.id
                )
                outcome = container.verify_webauthn()(
                    caller=caller, authentication_id=session.id, credential=key.get(options)
                )
                assert outcome.token is not None
                timings.append(time.perf_counter() - t0)
            elapsed = time.perf_counter() - begun
        finally:
            if database_url.startswith("postgres"):
                import psycopg

                with psycopg.connect(database_url, autocommit=True) as connection:
                    connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        timings.sort()
        return len(timings) / elapsed, timings[len(timings) // 2] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--database-url", default=os.environ.get("TESSERA_BENCH_DATABASE_URL", PG_URL)
    )
    args = parser.parse_args()
    print(f"WebAuthn assertion verification, one process, {os.cpu_count()} cores on the machine")
    for algorithm in ("ES256", "EdDSA", "RS256"):
        rate = adapter_rate(algorithm, args.seconds)
        print(f"  adapter {algorithm:<6} {rate:>9,.0f} assertions/s")
    rate, median = login_rate(args.database_url, args.seconds)
    where = "PostgreSQL" if args.database_url.startswith("postgres") else args.database_url
    print(
        f"  whole login (start + options + verify) on {where}: {rate:,.0f}/s, p50 {median:.1f} ms"
    )


if __name__ == "__main__":
    main()
