"""Rebuild benchmark: a million realistic events on PostgreSQL, then `projections rebuild`.

Prints generation time, then the rebuild's events/s per read model and the peak memory (VmHWM)
of the process that rebuilt them. It asserts nothing: it is a benchmark, not a test. See
bench/README.md ("Rebuild benchmark").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

PG_URL = os.environ.get("TESSERA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
ROOT = Path(__file__).resolve().parent.parent
#: events per COPY transaction, so generation is not bound by commit fsyncs
SAVE_EVENTS = 5000
METHODS = ("totp", "totp", "totp", "hotp")
RISK = ("low",) * 8 + ("medium",) * 3 + ("high",)
AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0 Safari/537.36",
    "okhttp/4.12.0",
)
POLICY_SETTINGS = (
    ("session_attempts", (3, 4, 5, 6)),
    ("hotp_look_ahead", (5, 10, 20)),
    ("token_ttl_seconds", (300, 600, 900)),
    ("max_backoff_seconds", (300, 900, 1800)),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="events to generate")
    parser.add_argument("--orgs", type=int, default=20, help="organisations")
    parser.add_argument("--logins", type=int, default=10, help="mean logins per user")
    parser.add_argument("--batch-size", type=int, default=0, help="rebuild batch (0: default)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the schema (prints its name)")
    parser.add_argument("--schema", help="rebuild an existing schema (generated with --keep)")
    parser.add_argument(
        "--per-model", action="store_true", help="rebuild one model after the other (diagnosis)"
    )
    parser.add_argument(
        "--one-process",
        action="store_true",
        help="apply each batch to every model in one process (the rebuild before processes)",
    )
    parser.add_argument("--rebuild-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    return parser


# --- generation ----------------------------------------------------------------------------


@dataclass
class Org:
    org_id: uuid.UUID
    admin: str  # "key:<id>" of its administrator key
    users: int = 0


@dataclass
class Pending:
    """Aggregates with unsaved events, saved together once there are SAVE_EVENTS of them."""

    aggregates: list[Any] = field(default_factory=list)
    events: int = 0


def generate(container: Any, *, events: int, orgs: int, logins: int, seed: int) -> int:
    """Organisations through the use case, then users' lives through the real aggregates."""
    from application.organisations import hash_api_key
    from domain.account import Account
    from domain.authentication import AuthenticationSession, SessionClosedError
    from domain.enrolment import Enrolment
    from domain.organisation import ApiKey

    app = container.identity_app()
    rng = random.Random(seed)
    tenants: list[Org] = []
    for i in range(orgs):
        created = container.create_organisation()(name=f"Bench {i:03d}")
        admin = ApiKey.create_id(hash_api_key(created.admin_api_key))
        tenants.append(Org(created.org_id, f"key:{admin}"))
    start = datetime(2026, 9, 1, tzinfo=UTC)
    span = 60 * 86_400  # the history covers 60 days
    written = app.recorder.max_notification_id() or 0
    pending = Pending()

    events_table = sql.Identifier(container.database().schema, "identity_events")
    copy = sql.SQL("COPY {} (originator_id, originator_version, topic, state) FROM STDIN").format(
        events_table
    )
    conn = psycopg.connect(container.database().conninfo)

    def flush() -> None:
        """Store the pending events exactly as `app.save` would (the application's mapper),
        but with COPY: eventsourcing's array-of-records INSERT costs more than the domain."""
        nonlocal written
        if not pending.aggregates:
            return
        with conn.transaction(), conn.cursor().copy(copy) as out:
            for aggregate in pending.aggregates:
                for domain_event in aggregate.collect_events():
                    stored = app.mapper.to_stored_event(domain_event)
                    out.write_row(
                        (
                            stored.originator_id,
                            stored.originator_version,
                            stored.topic,
                            stored.state,
                        )
                    )
        written += pending.events
        pending.aggregates, pending.events = [], 0

    def add(*aggregates: Any) -> None:
        for aggregate in aggregates:
            n = len(aggregate.pending_events)
            if n:
                pending.aggregates.append(aggregate)
                pending.events += n

    user = 0
    while written + pending.events < events:
        org = tenants[min(int(rng.paretovariate(1.2)) - 1, orgs - 1)]  # a few large tenants
        org.users += 1
        user += 1
        at = start + timedelta(seconds=rng.randrange(span - 7 * 86_400))
        account = Account(org_id=org.org_id, user_id=f"user-{user:07d}")
        enrolments = []
        for _ in range(2 if rng.random() < 0.15 else 1):
            method = rng.choice(METHODS)
            enrolment = Enrolment.start(
                enrolment_id=uuid.uuid4(),
                org_id=org.org_id,
                user_id=account.user_id,
                method=method,
                label="phone" if not enrolments else "backup",
                secret_ref=f"bench:{uuid.uuid4().hex}",  # no secret: the bench never verifies
                at=at,
            )
            at += timedelta(seconds=rng.randrange(5, 90))
            if rng.random() < 0.93:  # a few never confirm
                enrolment.confirm(0, at=at)
                account.add_enrolment(enrolment.id)
            enrolments.append(enrolment)
        usable = [e for e in enrolments if e.status == "active"]
        sessions = []
        for _ in range(rng.randrange(logins * 2 + 1) if usable else 0):
            at += timedelta(seconds=rng.randrange(600, 86_400))
            enrolment = rng.choice(usable)
            level = rng.choice(RISK)
            denied = level == "high" and rng.random() < 0.2
            session = AuthenticationSession.start(
                session_id=uuid.uuid4(),
                org_id=org.org_id,
                user_id=account.user_id,
                context={
                    "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                    "user_agent": rng.choice(AGENTS),
                },
                operation="payment" if rng.random() < 0.1 else None,
                risk={"level": level, "score": round(rng.random(), 2)},
                required_aal=None if denied else 2,
                methods=[e.method for e in usable],
                primary_factor_verified=True,
                max_attempts=5,
                ttl=timedelta(minutes=5),
                at=at,
            )
            sessions.append(session)
            if denied:
                continue
            roll = rng.random()
            try:
                if roll < 0.03:  # abandoned: expires on the next touch
                    session.ensure_open(at=at + timedelta(minutes=10))
                    continue
                for _ in range(rng.randrange(1, 4) if roll < 0.15 else 0):  # wrong codes first
                    at += timedelta(seconds=rng.randrange(3, 30))
                    session.fail_attempt(enrolment.method, at=at)
                    enrolment.reject_code(at=at, max_failures=10)
                    account.record_failure(at=at)
                if enrolment.locked:
                    enrolment.unlock(by=org.admin, at=at + timedelta(minutes=30))
                if not enrolment.is_usable or rng.random() < 0.05:
                    continue  # gave up
                at += timedelta(seconds=rng.randrange(3, 30))
                session.verify_factor(enrolment.method, enrolment.id, at=at)
                enrolment.accept_code(enrolment.next_moving_factor() + rng.randrange(2), at=at)
                session.satisfy(token_id=uuid.uuid4().hex, token_ttl=timedelta(minutes=5), at=at)
                account.clear_failures(by="user", at=at)
            except SessionClosedError:
                continue
        if usable and rng.random() < 0.05:  # lost phone: an administrator revokes it
            enrolment = usable[0]
            enrolment.revoke(by=org.admin, at=at + timedelta(days=1))
            account.remove_enrolment(enrolment.id)
        add(account, *enrolments, *sessions)
        if org.users % 500 == 0:  # now and then an administrator tunes the policy
            policy = app.get_policy(org.org_id)
            name, values = rng.choice(POLICY_SETTINGS)
            policy.change({name: rng.choice(values)}, by=org.admin, at=at)
            flush()  # the policy's version must follow its saved history
            app.save_changed(policy)
            written += 1
        if pending.events >= SAVE_EVENTS:
            flush()
    flush()
    conn.close()
    return int(app.recorder.max_notification_id() or 0)  # a policy change may record nothing


# --- rebuild (in a child process, so its memory high-water mark is its own) ---------------


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def rebuild_child(args: argparse.Namespace) -> int:
    """`tessera projections rebuild` (every rebuildable read model) as the CLI runs it: each
    model in a process of its own; `--one-process` applies each batch to every model in one
    process, `--per-model` rebuilds them one after the other in one process."""
    from application.projections import REBUILD_BATCH_SIZE
    from entrypoints.config import Settings
    from entrypoints.container import build_container
    from entrypoints.rebuild import REBUILDABLE, rebuild

    env = {"TESSERA_HOME": args.home, "TESSERA_DATABASE_URL": f"{PG_URL}?schema={args.schema}"}
    settings = Settings.from_env(env)
    container = build_container(settings)
    head = container.identity_app().recorder.max_notification_id() or 0
    container.identity_app().close()
    results: dict[str, Any] = {"head": head, "rss_before_kib": _status_kib("VmRSS"), "models": {}}
    batch_size = args.batch_size or REBUILD_BATCH_SIZE  # as `tessera projections rebuild`
    groups = [[name] for name in REBUILDABLE] if args.per_model else [list(REBUILDABLE)]
    parallel = not (args.per_model or args.one_process)
    started = time.perf_counter()
    for names in groups:
        t0, cpu0 = time.perf_counter(), time.process_time()
        rebuilt = rebuild(settings, names, batch_size=batch_size, parallel=parallel)
        results["models"][" + ".join(names)] = {
            "events": max(r.applied for r in rebuilt.values()),
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - cpu0 + _children_cpu(),
            "position": min(r.position for r in rebuilt.values()),
            "batch_size": batch_size,
            "processes": len(names) if parallel else 1,
            "vm_hwm_kib": max(r.peak_kib for r in rebuilt.values()),
        }
    results["seconds"] = time.perf_counter() - started
    results["vm_hwm_kib"] = max(
        [_status_kib("VmHWM")] + [m["vm_hwm_kib"] for m in results["models"].values()]
    )
    print(json.dumps(results), flush=True)
    return 0


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (the rebuild's worker processes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = usage.ru_utime + usage.ru_stime - _CHILDREN_BEFORE[0]
    _CHILDREN_BEFORE[0] += spent
    return spent


_CHILDREN_BEFORE = [0.0]


#: libpq takes the application_name from PGAPPNAME: the rebuild's backends are found by it.
APP_NAME = "tessera-rebuild-bench"


class BackendCpu:
    """Samples the CPU time of the PostgreSQL backends serving the rebuild (application_name
    APP_NAME) every 0.2 s from /proc, so other sessions' queries are not counted. A backend's
    last 0.2 s before it disconnects may be missed."""

    def __init__(self) -> None:
        self.seconds: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BackendCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def _run(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            while not self._stop.wait(0.2):
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [APP_NAME]
                ).fetchall()
                for (pid,) in rows:
                    try:
                        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    except OSError:
                        continue
                    self.seconds[pid] = (int(fields[11]) + int(fields[12])) / tick


def _postgres_cpu() -> float:
    """CPU seconds used so far by every PostgreSQL process on this machine, including its
    finished backends (reaped by the postmaster); 0 where /proc cannot tell."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.with_name("comm").read_text().strip() not in ("postgres", "postmaster"):
                continue
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def _counts(schema: str) -> dict[str, int]:
    tables = ("identity_events", "audit_records", "analytics_changes", "analytics_counts")
    with psycopg.connect(PG_URL) as conn:
        return {
            t: int(
                conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, t))
                ).fetchone()[0]  # type: ignore[index]
            )
            for t in tables
        }


def _revision() -> str:
    result = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    )
    return result.stdout.strip() or "unknown"


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rebuild_child:
        return rebuild_child(args)
    from entrypoints.config import Settings
    from entrypoints.container import build_container

    print(
        f"tessera rebuild bench {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, revision {_revision()}, "
        f"{os.cpu_count()} CPUs, PostgreSQL at 127.0.0.1:5432",
        flush=True,
    )
    schema = args.schema or "bench_" + uuid.uuid4().hex[:12]
    home = tempfile.mkdtemp(prefix="tessera-rebuild-")
    url = f"{PG_URL}?schema={schema}"
    try:
        if not args.schema:
            container = build_container(
                Settings.from_env({"TESSERA_HOME": home, "TESSERA_DATABASE_URL": url})
            )
            container.audit_view()
            container.analytics_view()  # tables exist before the child runs
            t0 = time.perf_counter()
            written = generate(
                container, events=args.events, orgs=args.orgs, logins=args.logins, seed=args.seed
            )
            took = time.perf_counter() - t0
            container.identity_app().close()
            print(
                f"generated {written:,} events in schema {schema} in {took:.1f} s "
                f"({written / took:,.0f} events/s, COPY of ~{SAVE_EVENTS} events per transaction)",
                flush=True,
            )
        child = [sys.executable, "-m", "bench.rebuild", "--rebuild-child"]
        child += ["--schema", schema, "--home", home, "--batch-size", str(args.batch_size)]
        child += ["--per-model"] if args.per_model else []
        child += ["--one-process"] if args.one_process else []
        t0, pg0 = time.perf_counter(), _postgres_cpu()
        with BackendCpu() as backends:
            out = subprocess.run(
                child,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
                env=os.environ | {"PGAPPNAME": APP_NAME},
            )
        wall, pg_cpu = time.perf_counter() - t0, _postgres_cpu() - pg0
        if out.returncode != 0:
            print(out.stderr[-4000:], file=sys.stderr)
            return 1
        results = json.loads(out.stdout.strip().splitlines()[-1])
        head = results["head"]
        print(f"\nrebuild of every read model (process wall time {wall:.1f} s incl. start-up)")
        for name, model in results["models"].items():
            rate = model["events"] / model["seconds"]
            print(
                f"  {name:<18} {model['events']:>10,} events in {model['seconds']:6.1f} s = "
                f"{rate:>9,.0f} events/s (CPU {model['cpu_seconds']:.1f} s in "
                f"{model['processes']} process(es), batch {model['batch_size']}, position "
                f"{model['position']:,}, peak RSS of a rebuilding process "
                f"{_mib(model['vm_hwm_kib'])})"
            )
        total = results["seconds"]
        print(
            f"  all models: {head:,} events in {total:.1f} s = {head / total:,.0f} events/s "
            f"(each event applied to every model); peak RSS (VmHWM) of a rebuilding process "
            f"{_mib(results['vm_hwm_kib'])}, {_mib(results['rss_before_kib'])} before the rebuild"
        )
        print(
            f"  PostgreSQL CPU: the rebuild's backends {backends.total:.1f} s = "
            f"{backends.total / head * 1e6:.0f} us/event; every postgres process on the machine "
            f"{pg_cpu:.1f} s (includes other sessions' work)"
        )
        counts = _counts(schema)
        print("  rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
        target = "MET" if head / total >= 100_000 else "NOT MET"
        print(f"target >= 100,000 events/s for the full rebuild: {target}")
    finally:
        if args.keep:
            print(f"kept schema {schema} (home {home})")
        else:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
            shutil.rmtree(home, ignore_errors=True)
            print(f"dropped schema {schema}, deleted {home}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
