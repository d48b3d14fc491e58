"""One loop follows several projections; a failing one does not hold the others back."""

from __future__ import annotations

import threading

from application.projections import follow_all


class Failing:
    name = "failing"

    def __init__(self) -> None:
        self.calls = 0

    def run_once(self) -> int:
        self.calls += 1
        raise RuntimeError("the database is away")


class Busy:
    name = "busy"

    def __init__(self, stop: threading.Event, batches: int) -> None:
        self.stop, self.batches, self.applied = stop, batches, 0

    def run_once(self) -> int:
        self.applied += 1
        if self.applied == self.batches:
            self.stop.set()
        return 10


def test_a_failing_projection_does_not_stop_the_others_from_advancing() -> None:
    stop = threading.Event()
    failing, busy = Failing(), Busy(stop, batches=5)
    follow_all([failing, busy], stop, interval=0.01)  # type: ignore[list-item]
    assert busy.applied == 5 and failing.calls == 5
