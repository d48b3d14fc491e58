"""`tessera projections rebuild`: empty read models and replay the log into them, in parallel.

Each read model has its own tables and tracking position, so on a long log each one is rebuilt
by a process of its own (spawned, with its own container and connections): the models use
separate cores and each overlaps the other's waits for the database. Each process reads and
decodes the log itself, which costs less than shipping decoded events between processes. On a
short log, or on the in-memory store, one process applies each batch to every model in turn.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from application.projections import REBUILD_BATCH_SIZE, catch_up_together
from entrypoints.config import Settings
from entrypoints.container import Container, build_container

#: Read models that `projections rebuild` may drop and replay.
REBUILDABLE = ("audit", "analytics")
#: Below this many events a second process costs more to start (about a second) than it saves.
PARALLEL_FROM = 20_000


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """One read model's rebuild: events applied, its position after, and the peak memory
    (VmHWM, KiB) of the process that rebuilt it."""

    applied: int
    position: int
    peak_kib: int


def _views(container: Container) -> dict[str, Callable[[], Any]]:
    return {"audit": container.audit_view, "analytics": container.analytics_view}


def rebuild(
    settings: Settings,
    names: Sequence[str] = REBUILDABLE,
    *,
    batch_size: int = REBUILD_BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
    parallel: bool | None = None,
    container: Container | None = None,
) -> dict[str, Rebuilt]:
    """Empty the named read models and replay every event into them; `progress(position,
    head)` as the slowest advances. `parallel` None decides by store and log length.

    Each batch commits with its position, so a rebuild that is stopped part-way resumes
    under `projections run` without applying an event twice.
    """
    own = container is None
    container = container or build_container(settings)
    try:
        for name in names:
            _views(container)[name]().reset()
        followers = {f.name: f for f in container.projection_followers()}
        head = followers[names[0]].head()
        if parallel is None:
            parallel = (
                len(names) > 1 and container.database().kind != "memory" and head >= PARALLEL_FROM
            )
        if not parallel:
            applied = catch_up_together(
                [followers[n] for n in names], batch_size=batch_size, progress=progress
            )
            peak = _status_kib("VmHWM")
            return {n: Rebuilt(applied[n], followers[n].position(), peak) for n in names}
    finally:
        if own:
            _close(container)
    return _in_processes(settings, names, batch_size=batch_size, progress=progress)


def _in_processes(
    settings: Settings,
    names: Sequence[str],
    *,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> dict[str, Rebuilt]:
    context = multiprocessing.get_context("spawn")  # no inherited connections or threads
    messages: Any = context.Queue()
    # the tables exist (this process emptied them): workers creating them at once would race
    # in PostgreSQL's catalogue ("tuple concurrently updated")
    existing = replace(settings, create_tables=False)
    workers = {
        name: context.Process(
            target=_rebuild_one,
            args=(existing, name, batch_size, messages, os.getpid()),
            name=f"rebuild-{name}",
            daemon=True,  # ends with this process
        )
        for name in names
    }
    for worker in workers.values():
        worker.start()
    positions = dict.fromkeys(names, 0)
    head = 0
    done: dict[str, Rebuilt] = {}
    try:
        while len(done) < len(names):
            try:
                message = messages.get(timeout=0.5)
            except queue.Empty:
                failed = [n for n, w in workers.items() if n not in done and not w.is_alive()]
                if failed:
                    raise RuntimeError(f"rebuilding {', '.join(failed)} failed") from None
                continue
            kind, name, *values = message
            if kind == "done":
                done[name] = Rebuilt(*values)
                positions[name] = values[1]
            else:
                positions[name], head = values[0], max(head, values[1])
            if progress is not None:
                slowest = min(positions.values())
                progress(slowest, max(head, slowest))
    finally:
        for worker in workers.values():
            worker.join(timeout=10)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)
    return {name: done[name] for name in names}


def _rebuild_one(
    settings: Settings, name: str, batch_size: int, messages: Any, parent: int
) -> None:
    """A worker process: replay the log into one (already emptied) read model."""
    container = build_container(settings)

    def report(position: int, head: int) -> None:
        if os.getppid() != parent:  # the rebuild was stopped: what is committed stays valid
            raise SystemExit(1)
        messages.put(("progress", name, position, head))

    try:  # an error ends the process with its traceback on stderr; the parent sees it die
        follower = {f.name: f for f in container.projection_followers()}[name]
        applied = catch_up_together([follower], batch_size=batch_size, progress=report)
        messages.put(("done", name, applied[name], follower.position(), _status_kib("VmHWM")))
    finally:
        _close(container)


def _close(container: Container) -> None:
    for view in _views(container).values():
        view().close()
    container.webhook_outbox().close()
    container.identity_app().close()


def _status_kib(key: str) -> int:
    """A field of /proc/self/status in KiB (0 where there is no /proc)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0
