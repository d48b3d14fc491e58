"""Verification throughput and latency of a real `tessera serve` on PostgreSQL; prints figures."""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import hmac
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.loadgen import (
    OVERRUN_SECONDS,
    Connection,
    Stats,
    balanced_connections,
    format_stats,
    machine_seconds,
    now,
    percentile,
    process_cpu,
)
from bench.profile import summarise

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
HOST = "127.0.0.1"
START = "/v1/authentications"
SATISFIED = b'"status":"satisfied"'
AUTH_ID = b'"authentication_id":"'
CONTEXT = '"context":{"ip":"203.0.113.7","user_agent":"tessera-bench/1.0"}'
HOTP_LOOK_AHEAD = 10  # the default policy's hotp_look_ahead
TOTP_PERIOD = 30

WHY_HOTP = (
    "Valid codes come from HOTP enrolments: each user has an endless sequence of codes "
    "(counter 1, 2, 3, ...), and each one is accepted exactly once, so a pool of N users gives "
    "N codes per round without waiting for a new 30 s TOTP step. Each user belongs to one client "
    "only, so a user's codes arrive in order and never race each other. The server path is the "
    "same for TOTP except the window arithmetic; the TOTP scenario checks that on a pool of "
    "users, each used at most twice per step (codes for the current and the next step)."
)


# --- one-time codes (RFC 4226 with hmac, independent of the server's pyotp) ------------------


def hotp(key: bytes, counter: int, *, digits: int = 6) -> str:
    mac = hmac.digest(key, struct.pack(">Q", counter), "sha1")
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def current_step() -> int:
    return int(time.time()) // TOTP_PERIOD


def b32decode(secret: str) -> bytes:
    return base64.b32decode(secret + "=" * (-len(secret) % 8))


@dataclass
class User:
    user_id: str
    method: str
    key: bytes = b""
    enrolment_id: str = ""
    counter: int = 0  # HOTP: the next counter to use
    last_step: int = -1  # TOTP: the last step used
    wrong_code: str = ""


def wrong_code_for(user: User) -> str:
    """A 6-digit code outside every counter the server could accept next."""
    window = {hotp(user.key, c) for c in range(user.counter, user.counter + HOTP_LOOK_AHEAD + 2)}
    candidate = 0
    while f"{candidate:06d}" in window:
        candidate += 1
    return f"{candidate:06d}"


def one_call_body(user_id: str, method: str, code: str) -> bytes:
    return f'{{"user_id":"{user_id}",{CONTEXT},"method":"{method}","code":"{code}"}}'.encode(
        "ascii"
    )


def start_body(user_id: str) -> bytes:
    return f'{{"user_id":"{user_id}",{CONTEXT}}}'.encode("ascii")


def verify_body(method: str, code: str) -> bytes:
    return f'{{"method":"{method}","code":"{code}"}}'.encode("ascii")


# --- the server under test -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def pg_execute(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(statement)


@dataclass
class Server:
    """`tessera serve` in a fresh schema and home directory, and its organisation."""

    workers: int
    port: int = field(default_factory=free_port)
    schema: str = field(default_factory=lambda: "bench_" + uuid.uuid4().hex[:12])
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tessera-bench-")))
    extra_env: dict[str, str] = field(default_factory=dict)
    switch_interval: float | None = None
    process: subprocess.Popen[bytes] | None = None
    org: dict[str, str] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return f"{PG_URL}?schema={self.schema}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
        env.update(TESSERA_DATABASE_URL=self.database_url, TESSERA_HOME=str(self.home))
        env.update(self.extra_env)
        if self.switch_interval is not None:
            # An experiment: every server process (uvicorn spawns its workers) imports this.
            site = self.home / "site"
            site.mkdir(exist_ok=True)
            (site / "sitecustomize.py").write_text(
                f"import sys\nsys.setswitchinterval({self.switch_interval!r})\n"
            )
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        return env

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    def create_org(self) -> None:
        result = subprocess.run(
            [str(BIN / "tessera"), "org", "create", "Bench", "--json"],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=120,
        )
        self.org = json.loads(result.stdout)

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(BIN / "tessera"),
                    "serve",
                    "--host",
                    HOST,
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.log_path}")
            if len(self.worker_pids()) >= self.workers and self._ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"the server was not ready within 60 s; see {self.log_path}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/ready", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes (children of the server process)."""
        if self.process is None:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_bytes()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(b")", 1)[1].split()[1])
            if ppid == self.process.pid and b"spawn_main" in cmdline:
                pids.append(int(entry.name))
        return sorted(pids)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # our own session, started above
            self.process.wait(timeout=10)

    def drop(self) -> None:
        pg_execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        shutil.rmtree(self.home, ignore_errors=True)


@dataclass
class CpuMeter:
    """CPU cores used over an interval: the server, PostgreSQL, this process, and the rest."""

    server: Server
    _processes: dict[int, tuple[str, float]] = field(default_factory=dict)
    _machine: dict[str, float] = field(default_factory=dict)

    def begin(self) -> None:
        self._processes, self._machine = process_cpu(), machine_seconds()

    def end(self, seconds: float) -> dict[str, float]:
        processes, machine = process_cpu(), machine_seconds()
        assert self.server.process is not None
        ours = {self.server.process.pid, *self.server.worker_pids()}
        used: dict[str, float] = {"server": 0.0, "postgres": 0.0, "load generator": 0.0}
        others: dict[str, float] = {}
        workers = self.server.worker_pids()
        for pid, (comm, total) in processes.items():
            delta = (total - self._processes.get(pid, (comm, 0.0))[1]) / seconds
            if pid in ours:
                used["server"] += delta
                if pid in workers:
                    used[f"worker {workers.index(pid) + 1}"] = delta
            elif comm.startswith("postgres"):
                used["postgres"] += delta
            elif pid == os.getpid():
                used["load generator"] += delta
            elif delta >= 0.02:
                others[f"{comm}[{pid}]"] = delta
        for kind in ("machine", "irq+softirq", "steal"):
            used[kind] = (machine[kind] - self._machine[kind]) / seconds
        used["other processes"] = sum(others.values())
        for name, delta in sorted(others.items(), key=lambda item: -item[1])[:3]:
            used[name] = delta
        return used


# --- scenarios --------------------------------------------------------------------------------

Worker = Callable[[Connection, list[User], Stats, float], Coroutine[Any, Any, None]]


async def run_scenario(
    name: str,
    server: Server,
    users: list[User],
    worker: Worker,
    *,
    clients: int,
    duration: float,
    meter: CpuMeter | None = None,
    balance: bool = True,
) -> Stats:
    """Each client owns every `clients`-th user, so no two requests race for one user."""
    if len(users) < clients:
        raise SystemExit(
            f"{name}: {len(users)} users for {clients} clients; need at least one each"
        )
    stats = Stats(name=name)

    def make() -> Connection:
        return Connection(HOST, server.port, api_key=server.org["api_key"])

    if balance:
        connections, spread = await balanced_connections(
            make, clients, server_port=server.port, workers=server.worker_pids()
        )
        stats.notes.append(spread)
    else:
        connections = [make() for _ in range(clients)]
    if meter is not None:
        meter.begin()
    stats.started = now()
    deadline = stats.started + duration
    tasks = [
        asyncio.create_task(worker(connections[i], users[i::clients], stats, deadline))
        for i in range(clients)
    ]
    done, pending = await asyncio.wait(tasks, timeout=duration + OVERRUN_SECONDS)
    stats.finished = now()
    for task in pending:
        task.cancel()
        stats.errors["client cancelled after overrun"] += 1
    for task in done:
        error = task.exception()
        if error is not None:
            stats.errors[f"{type(error).__name__}: {error}"] += 1
    for connection in connections:
        connection.close()
    if meter is not None:
        stats.cpu = meter.end(stats.elapsed)
    return stats


async def _send(
    conn: Connection, stats: Stats, path: str, body: bytes, label: str = ""
) -> tuple[int, bytes]:
    started = now()
    try:
        status, payload = await conn.post(path, body)
    except OSError as error:
        stats.errors[type(error).__name__] += 1
        await asyncio.sleep(0.01)
        return 0, b""
    stats.record(f"{label}{status}", now() - started)
    return status, payload


async def valid_one_call(
    conn: Connection, users: list[User], stats: Stats, deadline: float
) -> None:
    index = 0
    while now() < deadline:
        user = users[index % len(users)]
        index += 1
        code = hotp(user.key, user.counter)
        user.counter += 1
        status, payload = await _send(conn, stats, START, one_call_body(user.user_id, "hotp", code))
        if status == 201 and SATISFIED in payload:
            stats.outcomes["satisfied (201 with access_token)"] += 1


async def valid_totp_one_call(
    conn: Connection, users: list[User], stats: Stats, deadline: float
) -> None:
    """Each user at most once per step, with codes for the current step or the next one."""
    index, idle = 0, 0
    while now() < deadline and idle < len(users):
        user = users[index % len(users)]
        index += 1
        step = max(user.last_step + 1, current_step())
        if step > current_step() + 1:
            idle += 1
            continue
        idle = 0
        user.last_step = step
        body = one_call_body(user.user_id, "totp", hotp(user.key, step))
        status, payload = await _send(conn, stats, START, body)
        if status == 201 and SATISFIED in payload:
            stats.outcomes["satisfied (201 with access_token)"] += 1
    if idle:
        stats.outcomes["clients that used up their users' codes for this step"] += 1


async def wrong_one_call(
    conn: Connection, users: list[User], stats: Stats, deadline: float
) -> None:
    index = 0
    while now() < deadline:
        user = users[index % len(users)]
        index += 1
        await _send(conn, stats, START, one_call_body(user.user_id, "hotp", user.wrong_code))


async def valid_two_step(
    conn: Connection, users: list[User], stats: Stats, deadline: float
) -> None:
    index = 0
    while now() < deadline:
        user = users[index % len(users)]
        index += 1
        started = now()
        status, payload = await _send(conn, stats, START, start_body(user.user_id), "start ")
        at = payload.find(AUTH_ID)
        if status != 201 or at < 0:
            continue
        authentication_id = payload[at + len(AUTH_ID) : at + len(AUTH_ID) + 36].decode()
        code = hotp(user.key, user.counter)
        user.counter += 1
        path = f"{START}/{authentication_id}/verify"
        status, payload = await _send(conn, stats, path, verify_body("hotp", code), "verify ")
        if status == 200 and SATISFIED in payload:
            stats.outcomes["satisfied (200 with access_token)"] += 1
            stats.flows.append(now() - started)


async def sample_pg_activity(schema: str, *, seconds: float, every: float = 0.02) -> str:
    """What the server's PostgreSQL backends are doing, from pg_stat_activity polled repeatedly."""
    import psycopg

    counts: Counter[str] = Counter()
    polls = 0
    query = (
        "SELECT state, wait_event_type, wait_event, left(query, 60) FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
        "AND (query LIKE %s OR state LIKE 'idle in transaction%%')"
    )
    async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as conn:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            cursor = await conn.execute(query, (f'%"{schema}"%',))
            polls += 1
            for state, wait_type, wait_event, statement in await cursor.fetchall():
                if state == "idle":
                    continue
                if wait_type == "Lock" and "LOCK TABLE" in statement:
                    counts["waiting for LOCK TABLE identity_events (Lock:relation)"] += 1
                elif state.startswith("idle in transaction"):
                    counts["idle in transaction (waiting for the Python client)"] += 1
                elif wait_type:
                    counts[f"active, waiting on {wait_type}:{wait_event}"] += 1
                else:
                    counts["active, running"] += 1
            await asyncio.sleep(every)
    busy = sum(counts.values())
    lines = [
        f"   PostgreSQL backends of this server ({polls} polls of pg_stat_activity): on average "
        f"{busy / max(1, polls):.1f} not idle, of which:"
    ]
    for label, count in counts.most_common():
        lines.append(f"     {count / max(1, busy):6.1%}  {label} (avg {count / max(1, polls):.2f})")
    return "\n".join(lines)


# --- enrolment over HTTP ----------------------------------------------------------------------


async def _enrol_worker(conn: Connection, users: list[User], stats: Stats, deadline: float) -> None:
    for user in users:
        if now() > deadline:
            return
        body = json.dumps({"method": user.method}).encode()
        status, payload = await _send(
            conn, stats, f"/v1/users/{user.user_id}/enrolments", body, "enrol "
        )
        if status != 201:
            stats.outcomes[f"enrolment refused ({status})"] += 1
            continue
        created = json.loads(payload)
        user.key = b32decode(created["secret"])
        user.enrolment_id = created["enrolment_id"]
        if user.method == "hotp":
            code, user.counter = hotp(user.key, 0), 1
        else:
            user.last_step = current_step()
            code = hotp(user.key, user.last_step)
        path = f"/v1/enrolments/{user.enrolment_id}/confirm"
        status, _ = await _send(conn, stats, path, json.dumps({"code": code}).encode(), "confirm ")
        if status == 200:
            stats.outcomes["active enrolments"] += 1


async def enrol(server: Server, users: list[User], *, clients: int) -> Stats:
    stats = await run_scenario(
        f"enrolment: {len(users)} users, enrol + confirm over HTTP, {clients} clients",
        server,
        users,
        _enrol_worker,
        clients=min(clients, len(users)),
        duration=600,
    )
    for user in users:
        if user.key:
            user.wrong_code = wrong_code_for(user)
    return stats


# --- in-process use case ----------------------------------------------------------------------


@contextmanager
def in_process_container(server: Server) -> Iterator[Any]:
    from entrypoints.config import Settings
    from entrypoints.container import build_container

    base = Settings.from_env(
        {"TESSERA_HOME": str(server.home), "TESSERA_DATABASE_URL": server.database_url}
    )
    container = build_container(replace(base, pool_size=4))
    try:
        yield container
    finally:
        container.identity_app().close()
        store = container.data_keys()
        if hasattr(store, "close"):
            store.close()


@dataclass
class Probe:
    """Wraps a bound method on an instance, counting calls and summing their time."""

    calls: int = 0
    seconds: float = 0.0

    def wrap(self, owner: object, name: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.calls += 1
                self.seconds += time.perf_counter() - started

        setattr(owner, name, timed)


def in_process(
    server: Server, users: list[User], *, seconds: float, probed: int, profile_dir: Path | None
) -> str:
    """Call StartAuthentication with valid codes in a loop, on one thread, without HTTP."""
    from application.authentications import Caller
    from application.ports import RequestContext

    lines = ["== in-process: StartAuthentication(method='hotp', code=valid), one thread, no HTTP"]
    with in_process_container(server) as container:
        principal = container.authenticate_api_key()(server.org["api_key"])
        caller = Caller(org_id=principal.org_id, client_id=str(principal.key_id))
        use_case = container.start_authentication()
        context = RequestContext(ip="203.0.113.7", user_agent="tessera-bench/1.0", device_id=None)

        def verify_once(index: int) -> bool:
            user = users[index % len(users)]
            code = hotp(user.key, user.counter)
            user.counter += 1
            outcome = use_case(
                caller=caller, user_id=user.user_id, context=context, method="hotp", code=code
            )
            return outcome.session.status == "satisfied" and outcome.token is not None

        for index in range(min(200, len(users))):  # warm caches: data keys, signing key, imports
            verify_once(index)
        latencies: list[float] = []
        satisfied = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        machine_started = machine_seconds()["machine"]
        deadline = started + seconds
        index = 0
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            satisfied += verify_once(index)
            latencies.append(time.perf_counter() - t0)
            index += 1
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        busy = (machine_seconds()["machine"] - machine_started) / elapsed
        latencies.sort()
        lines.append(
            f"   {len(latencies)} verifications in {elapsed:.1f} s = "
            f"{len(latencies) / elapsed:,.0f} verifications/s ({satisfied} satisfied); per call "
            f"p50 {percentile(latencies, 50) * 1000:.2f} ms, p99 "
            f"{percentile(latencies, 99) * 1000:.2f} ms; CPU of this process "
            f"{cpu / len(latencies) * 1000:.2f} ms per verification; the machine was busy "
            f"{busy:.2f} of {os.cpu_count()} cores, this process {cpu / elapsed:.2f}"
        )
        lines.extend(_probed(container, verify_once, start=index, count=probed))
        index += probed
        if profile_dir is not None:
            lines.append(_profile_self(verify_once, start=index, seconds=10, out_dir=profile_dir))
    return "\n".join(lines)


def _profile_self(
    verify_once: Callable[[int], bool], *, start: int, seconds: int, out_dir: Path
) -> str:
    """py-spy --idle on this process while its main thread verifies: wall time incl. waits."""
    path = out_dir / "tessera-profile-in-process.txt"
    command = py_spy_command(os.getpid(), seconds, path, "--idle")
    if command is None:
        return ""
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.perf_counter() + seconds + 2
    index = start
    while time.perf_counter() < deadline and spy.poll() is None:
        verify_once(index)
        index += 1
    spy.wait(timeout=60)
    if not path.exists():
        return f"   py-spy on the in-process loop failed (exit {spy.returncode})"
    return summarise(
        path,
        title="in-process loop, main thread (py-spy --idle): wall time of one verification",
        threads="MainThread",
    )


def _probed(
    container: Any, verify_once: Callable[[int], bool], *, start: int, count: int
) -> list[str]:
    app = container.identity_app()
    probes: dict[str, Probe] = {}
    targets: list[tuple[str, object, str]] = [
        ("repository.get (load + replay)", app.repository, "get"),
        ("  events SELECT", app.recorder, "select_events"),
        ("  snapshots SELECT", app.snapshots.recorder, "select_events"),
        ("  events+snapshots decoded", app.mapper, "to_domain_event"),
        ("app.save (map + INSERT)", app, "save"),
        ("  events INSERT txn", app.recorder, "insert_events"),
        ("  snapshots INSERT", app.snapshots.recorder, "insert_events"),
        ("  events encoded", app.mapper, "to_stored_event"),
        ("vault.open (AES-GCM, key fetch)", container.vault(), "open"),
        ("otp.match (pyotp)", container.otp(), "match"),
        ("tokens.issue (RS256)", container.tokens(), "issue"),
        ("risk.assess", container.risk(), "assess"),
    ]
    import psycopg

    targets += [
        ("psycopg Cursor.execute", psycopg.Cursor, "execute"),
        ("psycopg Cursor.executemany", psycopg.Cursor, "executemany"),
    ]
    originals = [(owner, name, getattr(owner, name)) for _, owner, name in targets]
    for label, owner, name in targets:
        probes[label] = Probe()
        probes[label].wrap(owner, name)
    started = time.perf_counter()
    for index in range(start, start + count):
        verify_once(index)
    total = time.perf_counter() - started
    for owner, name, original in originals:
        setattr(owner, name, original)
    lines = [
        f"   breakdown over {count} more verifications ({total / count * 1000:.2f} ms each, "
        "timed by wrapping methods):"
    ]
    top = 0.0
    for label, probe in probes.items():
        if not label.startswith((" ", "psycopg")):
            top += probe.seconds
        lines.append(
            f"     {label:32} {probe.calls / count:5.2f} calls, "
            f"{probe.seconds / count * 1000:6.3f} ms per verification"
        )
    lines.append(
        f"     {'everything else (domain, use case)':32} {'':11} "
        f"{(total - top) / count * 1000:6.3f} ms per verification"
    )
    return lines


# --- profile ------------------------------------------------------------------------------------


def py_spy_command(pid: int, seconds: float, path: Path, *extra: str) -> list[str] | None:
    py_spy = shutil.which("py-spy") or str(BIN / "py-spy")
    if not Path(py_spy).exists():
        print("py-spy is not installed (.venv/bin/pip install py-spy): no profile", flush=True)
        return None
    return [
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "100",
        "--format",
        "raw",
        "--threads",
        "--output",
        str(path),
        *extra,
    ]


async def profile_under_load(
    server: Server, users: list[User], *, clients: int, seconds: int, out_dir: Path
) -> list[str]:
    """py-spy on one worker under the valid-code load: the GIL holder, then every thread."""
    worker_pid = server.worker_pids()[0]
    summaries = []
    for label, extra in (("gil", ["--gil"]), ("wall", ["--idle"])):
        path = out_dir / f"tessera-profile-{label}.txt"
        command = py_spy_command(worker_pid, seconds, path, *extra)
        if command is None:
            return []
        load = asyncio.create_task(
            run_scenario(
                "profile load", server, users, valid_one_call, clients=clients, duration=seconds + 4
            )
        )
        await asyncio.sleep(2)
        spy = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(spy.communicate(), timeout=seconds + 60)
        stats = await load
        print(
            f"   py-spy {' '.join(extra)} on worker {worker_pid} for {seconds} s, under "
            f"{stats.requests / stats.elapsed:,.0f} requests/s (py-spy slows it); exit "
            f"{spy.returncode} {err.decode()[-200:].strip()}",
            flush=True,
        )
        if not path.exists():
            continue
        if label == "gil":
            summaries.append(
                summarise(
                    path,
                    title="server worker, thread holding the GIL (py-spy --gil): Python CPU time",
                    gil_seconds=seconds,
                )
            )
        else:
            summaries.append(
                summarise(
                    path,
                    title="server worker, request threads (py-spy --idle, executor threads "
                    "'uvloop_N' only): wall time, incl. waiting for PostgreSQL and for the GIL",
                    threads="uvloop",
                )
            )
    return summaries


# --- main -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.verify",
        description="Start `tessera serve` on PostgreSQL, enrol users over HTTP, then measure "
        "complete verifications with concurrent keep-alive clients. Prints figures.",
    )
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--duration", type=float, default=20, help="seconds per scenario")
    parser.add_argument("--users", type=int, default=1000, help="HOTP users for valid codes")
    parser.add_argument("--wrong-users", type=int, default=64, help="users for wrong codes")
    parser.add_argument("--totp-users", type=int, default=500, help="TOTP users (0: skip)")
    parser.add_argument("--enrol-clients", type=int, default=8, help="clients that enrol users")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of unrecorded load")
    parser.add_argument("--baseline-duration", type=float, default=5, help="0: skip baselines")
    parser.add_argument("--latency-clients", type=int, default=2)
    parser.add_argument("--latency-duration", type=float, default=10)
    parser.add_argument("--no-two-step", action="store_true", help="skip the two-call form")
    parser.add_argument("--no-wrong", action="store_true", help="skip the wrong-code scenario")
    parser.add_argument(
        "--no-balance",
        action="store_true",
        help="open connections in a burst and leave them wherever the kernel puts them",
    )
    parser.add_argument("--in-process-seconds", type=float, default=10, help="0: skip")
    parser.add_argument("--profile-seconds", type=int, default=10, help="0: skip py-spy")
    parser.add_argument(
        "--profile-dir", type=Path, default=Path("/tmp"), help="where py-spy writes raw stacks"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="experiment: extra environment for the server and the in-process container, "
        "e.g. AGGREGATE_CACHE_MAXSIZE=10000 (eventsourcing reads os.environ)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="experiment: sys.setswitchinterval() in every server process (via sitecustomize)",
    )
    return parser


async def baseline_get(conn: Connection, users: list[User], stats: Stats, deadline: float) -> None:
    path = users[0].user_id  # the baseline "users" carry the path to get
    while now() < deadline:
        started = now()
        try:
            status, _ = await conn.request("GET", path)
        except OSError as error:
            stats.errors[type(error).__name__] += 1
            continue
        stats.record(str(status), now() - started)


async def http_phase(
    args: argparse.Namespace, server: Server, results: dict[str, Stats]
) -> list[User]:
    """Enrol, run every HTTP scenario and the profile; returns the valid users, counters on."""
    meter = CpuMeter(server)
    valid = [User(f"valid-{i:05d}", "hotp") for i in range(args.users)]
    wrong = [User(f"wrong-{i:05d}", "hotp") for i in range(args.wrong_users)]
    totp = [User(f"totp-{i:05d}", "totp") for i in range(args.totp_users)]
    c, d = args.clients, args.duration
    run = functools.partial(run_scenario, balance=not args.no_balance)

    def show(stats: Stats, key: str = "") -> None:
        if key:
            results[key] = stats
        print(format_stats(stats), flush=True)

    if args.baseline_duration > 0:
        for path, what in (
            ("/health", "no auth, no thread, no database"),
            ("/v1/policy", "API key (cached) + sync handler in a thread + 1 aggregate load"),
        ):
            show(
                await run(
                    f"baseline GET {path} ({what}), {c} clients, {args.baseline_duration:.0f} s",
                    server,
                    [User(path, "")] * c,
                    baseline_get,
                    clients=c,
                    duration=args.baseline_duration,
                    meter=meter,
                )
            )
    show(await enrol(server, valid + wrong + totp, clients=args.enrol_clients))
    valid = [u for u in valid if u.key]
    wrong = [u for u in wrong if u.key]
    totp = [u for u in totp if u.key]
    print(f"\n{WHY_HOTP}\n", flush=True)

    if args.warmup > 0:
        await run("warm-up", server, valid, valid_one_call, clients=c, duration=args.warmup)
    load = asyncio.create_task(
        run(
            f"valid codes, one call (POST /v1/authentications with code), HOTP, {len(valid)} "
            f"users, {c} clients, {d:.0f} s",
            server,
            valid,
            valid_one_call,
            clients=c,
            duration=d,
            meter=meter,
        )
    )
    await asyncio.sleep(min(2.0, d / 4))
    activity = await sample_pg_activity(server.schema, seconds=d / 2)
    stats = await load
    stats.notes.append(activity.strip())
    show(stats, "throughput")
    lc = args.latency_clients
    show(
        await run(
            f"latency: valid codes, one call, HOTP, {lc} clients, {args.latency_duration:.0f} s",
            server,
            valid,
            valid_one_call,
            clients=lc,
            duration=args.latency_duration,
            meter=meter,
        ),
        "latency",
    )
    if totp:
        stats = await run(
            f"valid codes, one call, TOTP, {len(totp)} users (each at most twice per 30 s step), "
            f"{c} clients, up to {d:.0f} s",
            server,
            totp,
            valid_totp_one_call,
            clients=c,
            duration=d,
            meter=meter,
        )
        stats.notes.append("ends early once every user's codes for the current step are used")
        show(stats)
    if not args.no_two_step:
        show(
            await run(
                f"valid codes, two calls (start, then /verify), HOTP, {c} clients, {d:.0f} s",
                server,
                valid,
                valid_two_step,
                clients=c,
                duration=d,
                meter=meter,
            )
        )
    if wrong and not args.no_wrong:
        stats = await run(
            f"wrong codes, one call, HOTP, {len(wrong)} users (401, then 429 once throttled), "
            f"{min(c, len(wrong))} clients, {d:.0f} s",
            server,
            wrong,
            wrong_one_call,
            clients=min(c, len(wrong)),
            duration=d,
            meter=meter,
        )
        stats.notes.append(
            "per user: 3 free failures (401), then back-off 1, 2, 4 ... s (429 while waiting), "
            "locked after 10 failures (429 for good)"
        )
        show(stats)

    if args.profile_seconds > 0:
        print("\n== profile: py-spy on one server worker under the valid-code load", flush=True)
        for text in await profile_under_load(
            server, valid, clients=c, seconds=args.profile_seconds, out_dir=args.profile_dir
        ):
            print(text, flush=True)
    return valid


def verdict(results: dict[str, Stats], *, clients: int, latency_clients: int) -> str:
    """The issue's targets, met or not, and the ceiling the measured CPU cost implies."""
    lines = ["== targets (2 vCPU, PostgreSQL, 2 workers)"]
    throughput, latency = results.get("throughput"), results.get("latency")
    if throughput is not None:
        done = throughput.outcomes.get("satisfied (201 with access_token)", 0)
        rate = done / throughput.elapsed
        p99 = percentile(throughput.all_latencies(), 99) * 1000
        ok = "MET" if rate >= 1000 and p99 < 50 else "NOT MET"
        lines.append(
            f"   >= 1,000 valid verifications/s with p99 < 50 ms at {clients} clients: {ok} "
            f"({rate:,.0f}/s satisfied, p99 {p99:.1f} ms)"
        )
        cpu = throughput.cpu
        per_request = (cpu["server"] + cpu["postgres"]) / max(1e-9, throughput.requests)
        per_request *= throughput.elapsed
        if per_request > 0:
            lines.append(
                f"   measured CPU per verification: server + PostgreSQL "
                f"{per_request * 1000:.2f} ms, so 2 idle cores would top out near "
                f"{2 / per_request:,.0f}/s; other processes used {cpu['other processes']:.2f} "
                "cores during the run"
            )
    if latency is not None:
        p50 = percentile(latency.all_latencies(), 50) * 1000
        ok = "MET" if p50 < 3 else "NOT MET"
        lines.append(f"   p50 < 3 ms at {latency_clients} clients: {ok} (p50 {p50:.2f} ms)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    extra_env = dict(item.split("=", 1) for item in args.server_env)
    # Import the project now, with the server about to start on the same tree: the in-process
    # pass then measures the code the server ran even if the tree changes during the run.
    import entrypoints.container  # noqa: F401

    revision = _revision()
    print(
        f"tessera bench {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, revision {revision}, "
        f"{os.cpu_count()} CPUs, {args.workers} workers, {args.clients} clients, "
        "PostgreSQL at 127.0.0.1:5432",
        flush=True,
    )
    if extra_env or args.switch_interval is not None:
        print(f"experiment: env {extra_env}, switch interval {args.switch_interval}", flush=True)
    server = Server(workers=args.workers, extra_env=extra_env, switch_interval=args.switch_interval)
    print(f"schema {server.schema}, home {server.home}, port {server.port}", flush=True)
    try:
        server.create_org()
        server.start()
        pid = server.process.pid if server.process else "?"
        print(f"server pid {pid}, workers {server.worker_pids()}", flush=True)
        results: dict[str, Stats] = {}
        try:
            valid = _event_loop_runner()(http_phase(args, server, results))
        finally:
            server.stop()
        print(verdict(results, clients=args.clients, latency_clients=args.latency_clients))
        if args.in_process_seconds > 0:
            # The same users' HOTP counters carry on, now without HTTP and with the server stopped.
            os.environ.update(extra_env)
            text = in_process(
                server,
                valid,
                seconds=args.in_process_seconds,
                probed=500,
                profile_dir=args.profile_dir if args.profile_seconds > 0 else None,
            )
            print(text, flush=True)
    finally:
        server.stop()
        server.drop()
        print(f"stopped the server, dropped schema {server.schema}", flush=True)
    if _revision() != revision:
        print(f"warning: the tree changed during the run ({revision} -> {_revision()})")
    return 0


def _revision() -> str:
    try:
        result = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return "unknown"
    return result.stdout.strip() or "unknown"


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


if __name__ == "__main__":
    raise SystemExit(main())
