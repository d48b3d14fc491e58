"""The fast event reader gives exactly the mapper's domain events, on every store."""

from __future__ import annotations

import contextlib
import math
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.application import Application
from eventsourcing.cryptography import AESCipher
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.event_reader import FastEventReader
from application.errors import TesseraError
from application.projections import MapperEventReader
from entrypoints.config import Settings
from entrypoints.container import Container, build_container
from tests.application.test_audit_projection import Story, memory  # noqa: F401  (fixture)
from tests.fakes import FakeClock


def _same(fast: list[tuple[Any, Tracking]], slow: list[tuple[Any, Tracking]]) -> None:
    assert len(fast) == len(slow) > 0
    for (a, ta), (b, tb) in zip(fast, slow, strict=True):
        assert type(a) is type(b)
        assert a.__dict__ == b.__dict__
        assert {k: type(v) for k, v in vars(a).items()} == {k: type(v) for k, v in vars(b).items()}
        assert ta == tb


def _read_all(reader: Any, *, limit: int = 7) -> list[tuple[Any, Tracking]]:
    events: list[tuple[Any, Tracking]] = []
    while batch := reader.read(start=len(events) + 1, limit=limit):
        events += batch
    return events


def _history(story: Story) -> None:
    for step in (
        ("enrol", "alice"),
        ("confirm", "alice"),
        ("login", "alice", True),
        ("login", "alice", False),
        ("policy", 7),
        ("unlock", "alice"),
        ("enrol", "bob"),
        ("erase", "alice"),
    ):
        story.clock.advance(31)
        with contextlib.suppress(TesseraError):
            getattr(story, step[0])(*step[1:])


def test_every_event_of_a_history_decodes_as_the_mapper_decodes_it(container: Container) -> None:
    """On SQLite and PostgreSQL (the `container` fixture), through the container's reader."""
    _history(Story(container))
    app = container.identity_app()
    fast = container.event_reader()
    assert isinstance(fast, FastEventReader)
    _same(_read_all(fast), _read_all(MapperEventReader(app)))
    assert fast.read(start=10_000, limit=10) == []


users = st.sampled_from(["alice", "bob"])
steps = st.lists(
    st.one_of(
        st.tuples(st.just("enrol"), users),
        st.tuples(st.just("confirm"), users),
        st.tuples(st.just("login"), users, st.booleans()),
        st.tuples(st.just("policy"), st.integers(3, 12)),
        st.tuples(st.just("erase"), users),
    ),
    min_size=1,
    max_size=15,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=steps, limit=st.integers(1, 20))
def test_random_histories_decode_as_the_mapper_decodes_them(
    memory: Container,  # noqa: F811
    history: list[tuple[Any, ...]],
    limit: int,
) -> None:
    memory.reset_singletons()
    story = Story(memory)
    for step in history:
        story.clock.advance(31)
        with contextlib.suppress(TesseraError):
            getattr(story, step[0])(*step[1:])
    app = memory.identity_app()
    _same(_read_all(FastEventReader(app), limit=limit), _read_all(MapperEventReader(app)))


class Odd(Aggregate):
    """Values the fast path does not revive itself, or cannot parse at all."""

    class Recorded(Aggregate.Created):
        amount: Decimal
        nested: dict[str, Any]
        ratio: float

    @event(Recorded)
    def __init__(self, amount: Decimal, nested: dict[str, Any], ratio: float) -> None:
        self.amount, self.nested, self.ratio = amount, nested, ratio


class Upcast(Aggregate):
    class Created(Aggregate.Created):
        class_version = 2
        label: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["label"] = "upcast"

    @event(Created)
    def __init__(self, label: str) -> None:
        self.label = label


def _app(**env: str) -> Application[Any]:
    return Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo", **env})


@pytest.mark.parametrize("cipher", [False, True])
def test_unusual_values_ciphers_and_upcasts_decode_as_the_mapper_decodes_them(
    cipher: bool,
) -> None:
    env = {"CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher"} if cipher else {}
    if cipher:
        env["CIPHER_KEY"] = AESCipher.create_key(16)
    app = _app(**env)
    at = datetime(2026, 11, 1, 12, 30, tzinfo=UTC)
    ids = [uuid.uuid4(), uuid.uuid4()]
    app.save(
        Odd(Decimal("12.50"), {"ids": ids, "at": [at], "deep": {"x": [{"y": ids[0]}]}}, 0.1),
        Odd(Decimal("1"), {"_type_": "not a tag", "_data_": 1, "more": 2}, 1e300),
        Odd(Decimal("-3"), {}, math.inf),  # json writes Infinity, which msgspec refuses
        Upcast("new"),
    )
    fast = _read_all(FastEventReader(app))
    _same(fast, _read_all(MapperEventReader(app)))
    assert fast[0][0].nested["deep"]["x"][0]["y"] == ids[0]
    assert fast[2][0].ratio == math.inf


def test_a_container_on_the_memory_store_reads_through_the_fast_reader(tmp_path: Path) -> None:
    base = Settings.from_env({"TESSERA_HOME": str(tmp_path)})
    c = build_container(replace(base, database_url="memory://"))
    c.clock.override(FakeClock())
    c.create_organisation()(name="Acme")
    follower = c.audit_follower()
    assert isinstance(follower.reader, FastEventReader)
    assert follower.catch_up() == c.identity_app().recorder.max_notification_id()
