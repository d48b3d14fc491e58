"""Summarise py-spy raw stacks by area of the server path; `python -m bench.profile FILE...`."""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

#: (substring of a frame, area): the leaf-most frame that matches decides a sample's area.
AREAS: tuple[tuple[str, str], ...] = (
    ("(psycopg", "PostgreSQL client (psycopg, incl. waits under --idle)"),
    ("(eventsourcing/", "eventsourcing (load/replay, map, save)"),
    ("(joserfc/", "RS256 token signing (joserfc, cryptography)"),
    ("(adapters/tokens.py", "RS256 token signing (joserfc, cryptography)"),
    ("(pyotp/", "pyotp (HOTP/TOTP)"),
    ("(adapters/otp.py", "pyotp (HOTP/TOTP)"),
    ("(adapters/vault.py", "vault (AES-GCM, data keys)"),
    ("(dependency_injector", "dependency-injector"),
    ("(litestar/", "HTTP framework (litestar, uvicorn, anyio, asyncio)"),
    ("(uvicorn/", "HTTP framework (litestar, uvicorn, anyio, asyncio)"),
    ("(anyio/", "HTTP framework (litestar, uvicorn, anyio, asyncio)"),
    ("(msgspec", "HTTP framework (litestar, uvicorn, anyio, asyncio)"),
    ("(asyncio/", "HTTP framework (litestar, uvicorn, anyio, asyncio)"),
    ("(concurrent/futures/", "HTTP framework (litestar, uvicorn, anyio, asyncio)"),
    ("(domain/", "our code: domain/"),
    ("(application/", "our code: application/"),
    ("(adapters/", "our code: adapters/ (other)"),
    ("(entrypoints/", "our code: entrypoints/"),
)
#: Leaf frames of threads that wait for work (only seen with --idle).
IDLE_LEAVES = (
    "Condition.wait (threading.py",
    "_worker (concurrent/futures/thread.py:81)",
    "Connection._recv (multiprocessing/connection.py",
)
PG_WAIT_LEAF = "Connection.wait (psycopg/connection.py"
#: Entry points whose inclusive share is worth printing.
MILESTONES = (
    "AuthenticationController.start (entrypoints/http/api.py",
    "StartAuthentication.__call__ (application/authentications.py",
    "Verifier.verify (application/authentications.py",
    "IdentityApplication._get (application/identity.py",
    "Repository.get (eventsourcing/application.py",
    "Application.save (eventsourcing/application.py",
    "PostgresApplicationRecorder.insert_events (eventsourcing/postgres.py",
    "PostgresAggregateRecorder.select_events (eventsourcing/postgres.py",
    "JoseTokenIssuer.issue (adapters/tokens.py",
    "PyOtpVerifier.match (adapters/otp.py",
    "EnvelopeVault.open (adapters/vault.py",
    "AuthenticateApiKey.__call__ (application/organisations.py",
    "principal_from (entrypoints/http/api.py",
    "KwargsModel.resolve_dependencies (litestar/_kwargs/kwargs_model.py",
    "HTTPRoute.handle (litestar/routes/http.py",
    "ASGIRouter.__call__ (litestar/_asgi/asgi_router.py",
    "Litestar.__call__ (litestar/app.py",
    "RequestResponseCycle.run_asgi (uvicorn/protocols/http/httptools_impl.py",
    "AuthenticationSession.start (domain/authentication.py",
    "Aggregate.__deepcopy__",
    "deepcopy (copy.py",
    "JSONTranscoder.encode (eventsourcing/persistence.py",
    "JSONTranscoder.decode (eventsourcing/persistence.py",
    "Mapper.to_stored_event (eventsourcing/persistence.py",
    "Mapper.to_domain_event (eventsourcing/persistence.py",
    "uuid4 (uuid.py",
)
_LINE = re.compile(r":\d+\)$")


@dataclass
class Profile:
    samples: int = 0
    areas: Counter[str] = field(default_factory=Counter)
    leaves: Counter[str] = field(default_factory=Counter)
    functions: Counter[str] = field(default_factory=Counter)
    milestones: Counter[str] = field(default_factory=Counter)
    threads: Counter[str] = field(default_factory=Counter)


def area_of(frames: list[str]) -> str:
    leaf = frames[-1]
    if any(leaf.startswith(idle) for idle in IDLE_LEAVES):
        return "idle: thread waiting for work"
    if leaf.startswith(PG_WAIT_LEAF):
        return "PostgreSQL client (psycopg, incl. waits under --idle)"
    for frame in reversed(frames):
        for marker, area in AREAS:
            if marker in frame:
                return area
    if frames[0].endswith("MainThread") and leaf.startswith("Runner.run"):
        return "event loop (uvloop C code, or idle under --idle)"
    return "other (stdlib)"


def load(path: Path, *, threads: str | None = None) -> Profile:
    """Parse `stack count` lines; keep only threads whose name contains `threads`."""
    profile = Profile()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = ""
        if frames[0].startswith("thread ("):
            thread = re.sub(r"\d+", "N", frames[0].split(": ", 1)[-1])
            frames = frames[1:]
        profile.threads[thread] += count
        if threads is not None and threads not in thread:
            continue
        if not frames:
            continue
        profile.samples += count
        profile.areas[area_of(frames)] += count
        profile.leaves[frames[-1]] += count
        seen = {_LINE.sub(")", f) for f in frames}
        for function in seen:
            profile.functions[function] += count
        for milestone in MILESTONES:
            if any(f.startswith(milestone) for f in seen):
                profile.milestones[milestone.split(" (")[0]] += count
    return profile


def summarise(
    path: Path, *, title: str, threads: str | None = None, gil_seconds: float = 0, rate: int = 100
) -> str:
    """Areas, hotspots (self time by leaf line) and inclusive shares of key functions.

    `threads` keeps only threads whose name contains it; `gil_seconds` (for `--gil` records)
    turns the sample count into the share of time the GIL was held.
    """
    profile = load(path, threads=threads)
    if profile.samples == 0:
        return f"== {title}: no samples in {path}"
    total = profile.samples
    held = f", GIL held {total / (gil_seconds * rate):.0%} of the time" if gil_seconds else ""
    lines = [f"== {title}", f"   {path}: {total} samples{held}", "   by area:"]
    for area, count in profile.areas.most_common():
        lines.append(f"     {count / total:6.1%}  {area}")
    lines.append("   hotspots (self, by line):")
    for frame, count in profile.leaves.most_common(15):
        lines.append(f"     {count / total:6.1%}  {frame}")
    lines.append("   inclusive share of key functions:")
    for name, count in profile.milestones.most_common():
        lines.append(f"     {count / total:6.1%}  {name}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """`python -m bench.profile FILE [THREAD-NAME-PART]`: summarise one raw py-spy record."""
    if not argv:
        print(main.__doc__)
        return 2
    threads = argv[1] if len(argv) > 1 else None
    print(summarise(Path(argv[0]), title=f"profile of {argv[0]}", threads=threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
