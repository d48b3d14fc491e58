"""A lean asyncio HTTP/1.1 keep-alive client and latency statistics, cheap enough to share a CPU."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

#: Seconds a scenario may overrun its duration before its clients are cancelled.
OVERRUN_SECONDS = 30.0


class HttpError(ConnectionError):
    """The connection closed, or the server answered something this client does not parse."""


class _ResponseReader(asyncio.Protocol):
    """Parses one `Content-Length` response at a time; nothing else (no chunking, no pipelining)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._body_start = -1
        self._length = -1
        self._status = 0
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if self._body_start < 0:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            start = head.find(b"\r\ncontent-length:")
            if start < 0:
                self._fail(HttpError("a response without Content-Length"))
                return
            stop = head.find(b"\r\n", start + 2)
            self._length = int(head[start + 17 : stop if stop >= 0 else None])
            self._status = int(head[9:12])
            self._body_start = end + 4
        total = self._body_start + self._length
        if len(buffer) < total:
            return
        body = bytes(buffer[self._body_start : total])
        del buffer[:total]
        self._body_start = -1
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, body))

    def _fail(self, error: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(HttpError(f"connection closed: {exc}"))


class Connection:
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self, host: str, port: int, *, api_key: str) -> None:
        self._host, self._port = host, port
        self._auth = f"Authorization: Bearer {api_key}\r\n".encode("ascii")
        self._host_header = f"Host: {host}:{port}\r\n".encode("ascii")
        self._reader: _ResponseReader | None = None

    async def _open(self) -> _ResponseReader:
        loop = asyncio.get_running_loop()
        _, reader = await loop.create_connection(_ResponseReader, self._host, self._port)
        self._reader = reader
        return reader

    async def connect(self) -> int:
        """Open the connection now; returns its local port."""
        if self._reader is None or self._reader.transport is None:
            await self._open()
        return self.local_port

    @property
    def local_port(self) -> int:
        if self._reader is None or self._reader.transport is None:
            return 0
        return int(self._reader.transport.get_extra_info("sockname")[1])

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        reader = self._reader
        if reader is None or reader.transport is None or reader.transport.is_closing():
            reader = await self._open()
        head = f"{method} {path} HTTP/1.1\r\n".encode("ascii") + self._host_header + self._auth
        if body is not None:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        reader.waiter = waiter
        assert reader.transport is not None
        reader.transport.write(head + b"\r\n" + (body or b""))
        try:
            return await waiter
        except HttpError:
            self._reader = None
            raise

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        return await self.request("POST", path, body)

    def close(self) -> None:
        if self._reader is not None and self._reader.transport is not None:
            self._reader.transport.close()
        self._reader = None


def socket_owners(server_port: int, pids: list[int]) -> dict[int, int]:
    """Client port -> pid of the process holding the accepted socket, for loopback IPv4."""
    inode_owner: dict[int, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inode_owner[int(target[8:-1])] = pid
    owners: dict[int, int] = {}
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            owner = inode_owner.get(int(fields[9]))
            if local_port == server_port and owner is not None:
                owners[remote_port] = owner
    return owners


async def balanced_connections(
    make: Callable[[], Connection], count: int, *, server_port: int, workers: list[int]
) -> tuple[list[Connection], str]:
    """`count` open connections spread evenly over the server's worker processes.

    Workers share one listening socket, so a burst of connections mostly lands on whichever
    worker wakes first, and keep-alive pins it there. Connect one at a time, keep a
    connection only while its worker has fewer than its share, close the rest.
    """
    share = -(-count // max(1, len(workers)))
    kept: dict[int, list[Connection]] = {pid: [] for pid in workers}
    extra: list[Connection] = []
    attempts = 0
    while sum(len(v) for v in kept.values()) < count and attempts < count * 20:
        attempts += 1
        connection = make()
        port = await connection.connect()
        owner = None
        for _ in range(200):
            owner = socket_owners(server_port, workers).get(port)
            if owner is not None:
                break
            await asyncio.sleep(0.005)
        if owner is not None and len(kept[owner]) < share:
            kept[owner].append(connection)
        else:
            extra.append(connection)
    for connection in extra:
        connection.close()
    chosen = [c for group in kept.values() for c in group]
    while len(chosen) < count:  # could not place them all: take what the kernel gives
        connection = make()
        await connection.connect()
        chosen.append(connection)
    spread = "/".join(str(len(v)) for v in kept.values())
    return chosen[:count], f"connections per worker {spread} ({attempts} connects)"


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def machine_seconds() -> dict[str, float]:
    """CPU seconds of the whole machine since boot, summed over cores, by kind."""
    with open("/proc/stat", "rb") as stat:
        user, nice, system, _idle, iowait, irq, softirq, steal = (
            int(v) for v in stat.readline().split()[1:9]
        )
    tick = os.sysconf("SC_CLK_TCK")
    return {
        "machine": (user + nice + system + irq + softirq + steal) / tick,
        "irq+softirq": (irq + softirq) / tick,
        "steal": steal / tick,
        "iowait": iowait / tick,
    }


def process_cpu() -> dict[int, tuple[str, float]]:
    """Every process's command name and CPU seconds so far."""
    tick = os.sysconf("SC_CLK_TCK")
    result = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                raw = stat.read()
        except OSError:
            continue
        comm = raw[raw.index(b"(") + 1 : raw.rindex(b")")].decode(errors="replace")
        fields = raw.rsplit(b")", 1)[1].split()
        result[int(name)] = (comm, (int(fields[11]) + int(fields[12])) / tick)
    return result


@dataclass
class Stats:
    """Latencies by label (usually the status code), outcome counts, wall time and CPU use."""

    name: str
    latencies: dict[str, list[float]] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    flows: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    finished: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def record(self, label: str, seconds: float) -> None:
        bucket = self.latencies.get(label)
        if bucket is None:
            bucket = self.latencies[label] = []
        bucket.append(seconds)

    @property
    def elapsed(self) -> float:
        return max(1e-9, self.finished - self.started)

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def all_latencies(self) -> list[float]:
        return sorted(x for values in self.latencies.values() for x in values)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f}"


def format_stats(stats: Stats) -> str:
    """A printable block: throughput, percentiles overall and per label, outcomes, CPU."""
    lines = [f"== {stats.name}"]
    for note in stats.notes:
        lines.append(f"   {note}")
    everything = stats.all_latencies()
    lines.append(
        f"   {stats.requests} requests in {stats.elapsed:.1f} s = "
        f"{stats.requests / stats.elapsed:,.0f} requests/s"
    )
    header = f"   {'':22} {'count':>7} {'per s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
    lines.append(header + f" {'max ms':>8}")

    def row(label: str, values: list[float]) -> str:
        return (
            f"   {label:22} {len(values):7d} {len(values) / stats.elapsed:8.0f} "
            f"{_ms(percentile(values, 50))} {_ms(percentile(values, 95))} "
            f"{_ms(percentile(values, 99))} {_ms(values[-1] if values else math.nan)}"
        )

    lines.append(row("all requests", everything))
    for label in sorted(stats.latencies):
        lines.append(row(f"status {label}", sorted(stats.latencies[label])))
    if stats.flows:
        lines.append(row("whole login (2 calls)", sorted(stats.flows)))
    for outcome, count in sorted(stats.outcomes.items()):
        lines.append(f"   outcome {outcome}: {count} ({count / stats.elapsed:,.0f}/s)")
    for error, count in sorted(stats.errors.items()):
        lines.append(f"   client error {error}: {count}")
    if stats.cpu:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in stats.cpu.items())
        lines.append(f"   CPU in cores (of {os.cpu_count()}): {parts}")
        rate = stats.requests / stats.elapsed
        if rate:
            lines.append(
                f"   CPU per request: server {stats.cpu['server'] / rate * 1000:.2f} ms, "
                f"postgres {stats.cpu['postgres'] / rate * 1000:.2f} ms, load generator "
                f"{stats.cpu['load generator'] / rate * 1000:.2f} ms"
            )
    return "\n".join(lines)


def now() -> float:
    return time.perf_counter()
