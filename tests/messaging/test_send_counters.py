"""Fixed-window send counters in memory, on SQLite and on PostgreSQL (one contract)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.persistence import Database
from adapters.send_counters import InMemorySendCounters, SqlSendCounters, window_start
from tests.conftest import PG_URL

AT = datetime(2026, 11, 28, 9, 0, 5, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database | None:
    if request.param == "memory":
        return None
    if request.param == "sqlite":
        return Database.from_url(f"sqlite:///{tmp_path / 'tessera.db'}")
    schema = request.getfixturevalue("pg_schema")
    return Database.from_url(f"{PG_URL}?schema={schema}")


@pytest.fixture
def make(database: Database | None) -> Iterator[object]:
    made: list[SqlSendCounters] = []
    shared = InMemorySendCounters()

    def build() -> InMemorySendCounters | SqlSendCounters:
        if database is None:
            return shared  # one process: every "instance" is the same memory
        counters = SqlSendCounters(database, pool_size=2)
        made.append(counters)
        return counters

    yield build
    for counters in made:
        counters.close()


def test_each_key_counts_up_within_its_window(make) -> None:  # type: ignore[no-untyped-def]
    counters = make()
    assert counters.hit(["number:1", "ip:1"], window_seconds=60, at=AT) == {
        "number:1": 1,
        "ip:1": 1,
    }
    assert counters.hit(["number:1"], window_seconds=60, at=AT + timedelta(seconds=50)) == {
        "number:1": 2
    }
    assert counters.hit(["ip:1", "number:1"], window_seconds=60, at=AT) == {
        "ip:1": 2,
        "number:1": 3,
    }


def test_a_new_window_starts_from_one(make) -> None:  # type: ignore[no-untyped-def]
    counters = make()
    counters.hit(["k"], window_seconds=60, at=AT)
    counters.hit(["k"], window_seconds=60, at=AT)
    assert counters.hit(["k"], window_seconds=60, at=AT + timedelta(seconds=55)) == {"k": 1}


def test_windows_of_different_lengths_count_apart(make) -> None:  # type: ignore[no-untyped-def]
    counters = make()
    at = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)  # the start of both a minute and an hour
    counters.hit(["k"], window_seconds=60, at=at)
    assert counters.hit(["k"], window_seconds=3600, at=at) == {"k": 1}
    assert counters.hit(["k"], window_seconds=60, at=at) == {"k": 2}


def test_a_key_named_twice_in_one_hit_counts_once(make) -> None:  # type: ignore[no-untyped-def]
    counters = make()
    assert counters.hit(["k", "k", "j"], window_seconds=60, at=AT) == {"k": 1, "j": 1}


def test_two_instances_share_the_counts(make) -> None:  # type: ignore[no-untyped-def]
    first, second = make(), make()
    first.hit(["region:GB"], window_seconds=3600, at=AT)
    assert second.hit(["region:GB"], window_seconds=3600, at=AT) == {"region:GB": 2}


def test_concurrent_hits_from_threads_lose_no_count(make) -> None:  # type: ignore[no-untyped-def]
    instances = [make(), make()]  # two "processes", each with its own connections
    seen: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        counters = instances[i % 2]
        try:
            for _ in range(15):
                counts = counters.hit(["global", f"worker:{i % 3}"], window_seconds=3600, at=AT)
                with lock:
                    seen.append(counts["global"])
        except BaseException as error:  # surface it in the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(seen) == list(range(1, 91))  # every increment returned a distinct count
    final = instances[0].hit(["global", "worker:0"], window_seconds=3600, at=AT)
    assert final == {"global": 91, "worker:0": 31}


def test_ended_windows_are_pruned(make) -> None:  # type: ignore[no-untyped-def]
    counters = make()
    counters.hit(["a", "b"], window_seconds=60, at=AT)
    assert counters.count_rows() == 2
    counters.hit(["c"], window_seconds=60, at=AT + timedelta(hours=1))
    assert counters.count_rows() == 1


def test_windows_align_to_the_epoch() -> None:
    assert window_start(AT, 60) == int(AT.timestamp()) - 5
    assert window_start(AT, 86400) == int(datetime(2026, 11, 28, tzinfo=UTC).timestamp())
    with pytest.raises(ValueError):
        window_start(AT, 0)


def test_on_the_memory_database_the_counts_live_in_the_process() -> None:
    counters = SqlSendCounters(Database.from_url("memory://"))
    counters.hit(["k"], window_seconds=60, at=AT)
    assert counters.hit(["k"], window_seconds=60, at=AT) == {"k": 2}
    assert counters.count_rows() == 1
    counters.close()
