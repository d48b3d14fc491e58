"""Follow the event store by polling and feed a projection in batches, exactly once."""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder

log = logging.getLogger("tessera.projections")

#: Events per transaction: large enough to amortise a commit, small enough to stay responsive.
BATCH_SIZE = 500
#: Events per transaction when rebuilding: fewer commits and per-batch lookups; memory stays
#: bounded by one batch (see bench/rebuild.py).
REBUILD_BATCH_SIZE = 5000


class EventReader(Protocol):
    """Stored events after a position, decoded, in notification order."""

    def read(self, *, start: int, limit: int) -> list[tuple[Any, Tracking]]:
        """Up to `limit` events from notification id `start` on, each with its tracking."""
        ...


class MapperEventReader:
    """Reads through the application's recorder and mapper (eventsourcing's own API)."""

    def __init__(self, app: Application[UUID]) -> None:
        self.app = app

    def read(self, *, start: int, limit: int) -> list[tuple[Any, Tracking]]:
        app = self.app
        return [
            (app.mapper.to_domain_event(n), Tracking(app.name, n.id))
            for n in app.recorder.select_notifications(start=start, limit=limit)
        ]


class BatchProjection(Protocol):
    name: str

    @property
    def view(self) -> TrackingRecorder: ...

    def process_batch(self, events: list[tuple[Any, Tracking]]) -> None: ...


class ProjectionFollower:
    """Pulls notifications after the view's tracking position and applies them in batches.

    Works on every store (eventsourcing 9.5 cannot subscribe to SQLite). Each batch and its
    position commit together, so a crash anywhere loses at most the batch in flight, which is
    applied again on restart; a batch another follower already applied raises IntegrityError
    in the view and is skipped. `until` stops at the first event recorded after that moment
    (point-in-time replay).
    """

    def __init__(
        self,
        app: Application[UUID],
        projection: BatchProjection,
        *,
        batch_size: int = BATCH_SIZE,
        until: datetime | None = None,
        reader: EventReader | None = None,
    ) -> None:
        self.app = app
        self.reader: EventReader = reader or MapperEventReader(app)
        self.projection = projection
        self.batch_size = batch_size
        self.until = until
        self._lock = threading.Lock()
        self._finished = False

    @property
    def name(self) -> str:
        return self.projection.name

    def position(self) -> int:
        return self.projection.view.max_tracking_id(self.app.name) or 0

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def lag(self) -> int:
        """Events recorded but not yet applied."""
        return max(0, self.head() - self.position())

    def run_once(self, *, batch_size: int | None = None) -> int:
        """Apply the next batch (of `batch_size`, default the follower's); the number of
        events applied (0 when caught up)."""
        with self._lock:
            if self._finished:
                return 0
            start = self.position() + 1
            batch = self.reader.read(start=start, limit=batch_size or self.batch_size)
            if self.until is not None:
                for index, (domain_event, _) in enumerate(batch):
                    if domain_event.timestamp > self.until:
                        self._finished = True
                        batch = batch[:index]
                        break
            if not batch:
                return 0
            try:
                self.projection.process_batch(batch)
            except IntegrityError:
                log.info("projection %s: batch from %d applied elsewhere", self.name, start)
            return len(batch)

    def catch_up(
        self,
        progress: Callable[[int, int], None] | None = None,
        *,
        batch_size: int | None = None,
    ) -> int:
        """Apply batches until none is left; `progress(position, head)` after each."""
        total = 0
        head = self.head()
        while applied := self.run_once(batch_size=batch_size):
            total += applied
            if progress is not None:
                progress(self.position(), max(head, self.position()))
        return total

    def run_forever(self, stop: threading.Event, *, interval: float = 0.2) -> None:
        """Follow the store until `stop` is set; errors are logged and retried."""
        while not stop.is_set():
            try:
                if self.run_once():
                    continue
            except Exception:  # a database hiccup must not end the follower; it retries
                log.exception("projection %s failed; retrying", self.name)
                stop.wait(min(5.0, interval * 10))
                continue
            stop.wait(interval)


def catch_up_together(
    followers: Sequence[ProjectionFollower],
    *,
    batch_size: int = REBUILD_BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Bring several read models of one application up to its head in a single pass over
    the log (a rebuild): each batch is selected and decoded once and handed to every
    follower still behind it. The events applied per follower, by name.

    The next batch is read and decoded by a second thread while this one is written: the
    writes mostly wait for the database, and reading has no effect to order. Writes stay in
    this thread, one batch after the other, each with its tracking position.
    """
    if not followers:
        return {}
    reader = followers[0].reader
    positions = {f.name: f.position() for f in followers}
    applied = dict.fromkeys(positions, 0)
    head = followers[0].head()
    with few_collections(), ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as ahead:
        start = min(positions.values()) + 1
        next_batch = ahead.submit(reader.read, start=start, limit=batch_size)
        while True:
            batch = next_batch.result()
            if not batch:
                return applied
            following = batch[-1][1].notification_id + 1
            next_batch = ahead.submit(reader.read, start=following, limit=batch_size)
            _apply(followers, batch, positions, applied, start)
            start = min(positions.values()) + 1
            if start != following:  # another process moved a position: read from there
                next_batch = ahead.submit(reader.read, start=start, limit=batch_size)
            if progress is not None:
                done = min(positions.values())
                progress(done, max(head, done))


def _apply(
    followers: Sequence[ProjectionFollower],
    batch: list[tuple[Any, Tracking]],
    positions: dict[str, int],
    applied: dict[str, int],
    start: int,
) -> None:
    for follower in followers:
        behind = [item for item in batch if item[1].notification_id > positions[follower.name]]
        if not behind:
            continue
        with follower._lock:
            try:
                follower.projection.process_batch(behind)
            except IntegrityError:
                log.info("projection %s: batch from %d applied elsewhere", follower.name, start)
        positions[follower.name] = follower.position()
        applied[follower.name] += len(behind)


@contextlib.contextmanager
def few_collections(threshold: int = 100_000) -> Iterator[None]:
    """Run the cyclic garbage collector rarely while replaying the log.

    Decoding a batch allocates tens of thousands of small dicts, and every 700 allocations the
    collector would walk the young objects (and, often enough, every live one) although a
    rebuild creates no reference cycles: measured, a third of the decoding time. Objects that
    already exist are frozen out of its sight; everything is restored on exit.
    """
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(threshold, previous[1], previous[2])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


def follow_all(
    followers: Sequence[ProjectionFollower], stop: threading.Event, *, interval: float = 0.2
) -> None:
    """Follow several projections in one loop until `stop` is set: each gets a batch in turn,
    and the loop sleeps only when all are caught up. One failing projection is logged and
    retried without holding the others back."""
    while not stop.is_set():
        busy = failed = False
        for follower in followers:
            try:
                busy = bool(follower.run_once()) or busy
            except Exception:  # a database hiccup must not end the loop; it retries
                log.exception("projection %s failed; retrying", follower.name)
                failed = True
        if not busy:  # after a failure, back off as run_forever does, not to flood the log
            stop.wait(min(5.0, interval * 10) if failed else interval)


class BackgroundLoop:
    """Runs `loop(stop)` in a daemon thread until `stop()` (inline projections, webhooks)."""

    def __init__(
        self, loop: Callable[[threading.Event], None], *, name: str, join_timeout: float = 15.0
    ) -> None:
        self._loop = loop
        self._name = name
        self._join_timeout = join_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(self._stop,), name=self._name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._join_timeout)
            self._thread = None


class BackgroundFollower(BackgroundLoop):
    """Follows one or more projections in a daemon thread for the embedded (inline) mode."""

    def __init__(self, *followers: ProjectionFollower, interval: float = 0.2) -> None:
        if not followers:
            raise ValueError("BackgroundFollower needs at least one follower")
        self.followers = followers
        super().__init__(
            functools.partial(follow_all, followers, interval=interval),
            name="projections-" + "-".join(f.name for f in followers),
        )
