"""Aggregates alone: rules, and that replaying their events rebuilds the same state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.domain import Aggregate
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.account import Account
from domain.authentication import AuthenticationSession, SessionClosedError
from domain.enrolment import (
    CodeReplayedError,
    Enrolment,
    EnrolmentNotActiveError,
    EnrolmentNotPendingError,
    InvalidOtpParametersError,
)
from domain.policy import InvalidPolicyError, Policy
from domain.throttle import ThrottleRule

T0 = datetime(2026, 11, 28, 12, tzinfo=UTC)


def _enrolment(method: str = "totp") -> Enrolment:
    return Enrolment.start(
        enrolment_id=uuid4(),
        org_id=uuid4(),
        user_id="alice",
        method=method,
        label="phone",
        secret_ref="tsv1.x",
        at=T0,
    )


def _replayed(aggregate: Aggregate) -> Any:
    rebuilt = None
    for domain_event in aggregate.collect_events():
        rebuilt = domain_event.mutate(rebuilt)
    return rebuilt


def _session(**overrides: Any) -> AuthenticationSession:
    values: dict[str, Any] = dict(
        session_id=uuid4(),
        org_id=uuid4(),
        user_id="alice",
        context={},
        operation=None,
        risk={"score": 0, "level": "low", "reasons": []},
        required_aal=2,
        methods=["totp"],
        primary_factor_verified=True,
        max_attempts=3,
        ttl=timedelta(minutes=5),
        at=T0,
    )
    values.update(overrides)
    return AuthenticationSession.start(**values)


def test_an_enrolment_is_pending_until_confirmed_and_the_first_code_is_consumed() -> None:
    enrolment = _enrolment()
    assert enrolment.status == "pending" and not enrolment.is_usable
    enrolment.confirm(100, at=T0)
    assert enrolment.status == "active" and enrolment.last_step == 100
    with pytest.raises(CodeReplayedError):
        enrolment.accept_code(100, at=T0)
    with pytest.raises(EnrolmentNotPendingError):
        enrolment.confirm(101, at=T0)


def test_an_hotp_counter_moves_past_the_matched_value() -> None:
    enrolment = _enrolment("hotp")
    enrolment.confirm(0, at=T0)
    enrolment.accept_code(5, at=T0)
    assert enrolment.counter == 6 and enrolment.next_moving_factor() == 6
    with pytest.raises(CodeReplayedError):
        enrolment.accept_code(5, at=T0)


def test_unsupported_otp_parameters_are_refused() -> None:
    for kwargs in ({"algorithm": "MD5"}, {"digits": 7}, {"period": 300}, {"method": "sms"}):
        with pytest.raises(InvalidOtpParametersError):
            Enrolment.start(
                enrolment_id=uuid4(),
                org_id=uuid4(),
                user_id="a",
                label="x",
                secret_ref="r",
                at=T0,
                **{"method": "totp", **kwargs},
            )  # type: ignore[arg-type]


def test_consecutive_failures_lock_at_the_limit_and_an_unlock_clears_them() -> None:
    enrolment = _enrolment()
    enrolment.confirm(1, at=T0)
    for _ in range(10):
        enrolment.reject_code(at=T0, max_failures=10)
    assert enrolment.locked and not enrolment.is_usable
    with pytest.raises(EnrolmentNotActiveError):
        enrolment.accept_code(2, at=T0)
    enrolment.unlock(by="admin", at=T0)
    assert not enrolment.locked and enrolment.consecutive_failures == 0
    enrolment.accept_code(2, at=T0)


def test_a_revoked_enrolment_records_no_second_revocation() -> None:
    enrolment = _enrolment()
    enrolment.revoke(by="k", at=T0)
    enrolment.collect_events()
    enrolment.revoke(by="k", at=T0)
    assert enrolment.collect_events() == []


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["accept", "reject", "unlock", "revoke"]), max_size=40))
def test_replaying_an_enrolments_events_rebuilds_the_same_state(commands: list[str]) -> None:
    enrolment = _enrolment()
    enrolment.confirm(0, at=T0)
    step = 0
    for command in commands:
        try:
            if command == "accept":
                step += 1
                enrolment.accept_code(step, at=T0 + timedelta(seconds=30 * step))
            elif command == "reject":
                enrolment.reject_code(at=T0, max_failures=5)
            elif command == "unlock":
                enrolment.unlock(by="admin", at=T0)
            else:
                enrolment.revoke(by="app", at=T0)
        except EnrolmentNotActiveError:
            pass
    version, state = enrolment.version, dict(vars(enrolment))
    rebuilt = _replayed(enrolment)
    assert rebuilt.version == version
    assert {k: v for k, v in vars(rebuilt).items() if k != "_pending_events"} == {
        k: v for k, v in state.items() if k != "_pending_events"
    }
    assert not (rebuilt.locked and rebuilt.consecutive_failures < 5)


@settings(max_examples=200, deadline=None)
@given(failures=st.integers(0, 200), free=st.integers(0, 10), cap=st.integers(1, 3600))
def test_backoff_grows_monotonically_and_never_exceeds_its_cap(
    failures: int, free: int, cap: int
) -> None:
    rule = ThrottleRule(free_attempts=free, max_failures=100, max_delay_seconds=cap)
    assert 0 <= rule.delay_after(failures) <= cap
    assert rule.delay_after(failures) <= rule.delay_after(failures + 1)
    assert rule.delay_after(failures) == 0 or failures >= free


def test_retry_after_counts_down_from_the_last_failure() -> None:
    rule = ThrottleRule(free_attempts=3, max_failures=10, max_delay_seconds=900)
    assert rule.retry_after(2, T0, at=T0) == 0
    assert rule.retry_after(5, T0, at=T0) == 4  # 2 ** (5 - 3)
    assert rule.retry_after(5, T0, at=T0 + timedelta(seconds=3)) == 1
    assert rule.retry_after(5, T0, at=T0 + timedelta(seconds=4)) == 0


def test_an_account_throttles_users_with_and_without_authenticators_alike() -> None:
    rule = ThrottleRule()
    with_enrolment, without = Account(org_id=uuid4(), user_id="a"), Account(uuid4(), "b")
    with_enrolment.add_enrolment(uuid4())
    for account in (with_enrolment, without):
        for _ in range(4):
            account.record_failure(at=T0)
    assert with_enrolment.retry_after(rule, at=T0) == without.retry_after(rule, at=T0) == 2


def test_the_policy_refuses_more_than_nists_hundred_failures() -> None:
    policy = Policy(org_id=uuid4())
    with pytest.raises(InvalidPolicyError):
        policy.change({"max_failed_attempts": 101}, by="admin", at=T0)
    with pytest.raises(InvalidPolicyError):
        policy.change({"no_such_setting": 1}, by="admin", at=T0)
    policy.change({"max_failed_attempts": 100}, by="admin", at=T0)
    assert policy.throttle.max_failures == 100


def test_risk_can_raise_the_required_level_but_never_lower_it() -> None:
    policy = Policy(org_id=uuid4())
    assert policy.required_aal(operation=None, risk_level="low") == 2
    assert policy.required_aal(operation=None, risk_level="high") == 3
    policy.change({"risk_response": {"high": "deny"}, "step_up": {"payment": 3}}, by="a", at=T0)
    assert policy.required_aal(operation=None, risk_level="high") is None
    assert policy.required_aal(operation="payment", risk_level="low") == 3


def test_a_session_is_satisfied_once_the_factor_reaches_its_aal() -> None:
    session = _session()
    assert session.verify_factor("totp", uuid4(), at=T0)
    session.satisfy(token_id="jti-1", token_ttl=timedelta(minutes=5), at=T0)
    assert session.status == "satisfied" and session.amr == ["otp"] and session.aal == 2
    with pytest.raises(SessionClosedError):
        session.fail_attempt("totp", at=T0)


def test_a_session_fails_after_its_attempts_and_expires_on_time() -> None:
    session = _session()
    for _ in range(3):
        session.fail_attempt("totp", at=T0)
    assert session.status == "failed"
    late = _session()
    assert late.status_at(T0 + timedelta(minutes=5)) == "expired"
    with pytest.raises(SessionClosedError):
        late.ensure_open(at=T0 + timedelta(minutes=5))
    assert late.status == "expired"


def test_an_otp_alone_reaches_aal1_when_no_primary_factor_was_verified() -> None:
    session = _session(primary_factor_verified=False, required_aal=2)
    assert not session.verify_factor("totp", uuid4(), at=T0)
    assert session.reached_aal() == 1


def test_a_denied_session_starts_failed() -> None:
    assert _session(required_aal=None).status == "failed"
