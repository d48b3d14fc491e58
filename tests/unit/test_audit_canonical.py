"""The audit chain's hand-written canonical JSON is byte for byte the json module's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from application.audit import AuditEntry, chain_hash

texts = st.text(st.characters(codec="utf-8"), max_size=40)  # quotes, controls, non-ASCII
optional = st.none() | texts
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=zones
)
entries = st.builds(
    AuditEntry,
    org_id=st.uuids(),
    position=st.integers(1, 2**62),
    event_id=texts,
    at=moments,
    subject_id=st.uuids(),
    user_id=optional,
    actor_type=texts,
    actor_id=optional,
    action=texts,
    outcome=texts,
    method=optional,
    ip=optional,
    user_agent=optional,
    details=st.dictionaries(texts, json_values, max_size=4),
)


@settings(max_examples=300)
@given(entry=entries, seq=st.integers(1, 2**62), prev=st.text("0123456789abcdef", max_size=64))
def test_canonical_bytes_equal_the_json_modules(entry: AuditEntry, seq: int, prev: str) -> None:
    assert entry.canonical(seq, prev) == entry.canonical_json(seq, prev)


def test_a_known_record_keeps_its_hash() -> None:
    """Records written before the fast encoder still verify: this hash is from the old one."""
    entry = AuditEntry(
        org_id=UUID("6f1b2f39-0a0e-4c54-9b39-5d1e0e7c2b11"),
        position=42,
        event_id="6f1b2f39-0a0e-4c54-9b39-5d1e0e7c2b11/3",
        at=datetime(2026, 11, 28, 8, 30, 5, 123456, tzinfo=UTC),
        subject_id=UUID("0b8f3d4e-8f8e-4b9c-a1d3-3c2e9f0a7b6d"),
        user_id="zoë",
        actor_type="user",
        actor_id=None,
        action="authentication.started",
        outcome="info",
        method=None,
        ip="203.0.113.9",
        user_agent='Mozilla/5.0 "quoted"\t',
        details={"risk_score": 0.36, "methods": ["totp"], "operation": None},
    )
    assert chain_hash(entry, 7, "ab" * 32) == (
        "97292b37449adca11db45a1cb2dc3b9d448a3b28f43e1c946d0d0670d218f6de"
    )
