"""Properties of out-of-band codes: generation, expiry, tries, cool-down and single use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.codes import Messaging, mask_email
from domain.authentication import AuthenticationSession
from domain.codes import NoCodeError, ResendTooSoonError, check_resend, issue_code, open_code

AT = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


class Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def otp_secret(self, size: int) -> bytes:
        assert size == 8
        return self.data


def _messaging(data: bytes) -> Messaging:
    fields = dict.fromkeys(Messaging.__dataclass_fields__, None)
    return Messaging(**{**fields, "secrets": Bytes(data)})  # type: ignore[arg-type]


@given(st.binary(min_size=8, max_size=8))
def test_a_code_is_always_six_digits(data: bytes) -> None:
    code = _messaging(data).new_code()
    assert len(code) == 6 and code.isdigit()
    assert int(code) == int.from_bytes(data, "big") % 1_000_000


def test_codes_cover_every_leading_digit() -> None:
    firsts = {_messaging(i.to_bytes(8, "big")).new_code()[0] for i in range(0, 10**6, 99_991)}
    assert firsts == set("0123456789")


def _record(ttl: int, tries: int, cool_down: int) -> dict[str, object]:
    return issue_code(
        channel="sms",
        enrolment_id=uuid4(),
        code_hash="kid$00",
        delivery_id=uuid4(),
        ttl=timedelta(seconds=ttl),
        max_tries=tries,
        cool_down=timedelta(seconds=cool_down),
        at=AT,
    )


@given(
    ttl=st.integers(60, 900),
    tries=st.integers(1, 10),
    cool_down=st.integers(0, 600),
    elapsed=st.floats(0, 2000, allow_nan=False),
    misses=st.integers(0, 12),
)
def test_a_code_opens_only_before_it_expires_and_while_tries_remain(
    ttl: int, tries: int, cool_down: int, elapsed: float, misses: int
) -> None:
    record = {**_record(ttl, tries, cool_down), "tries_left": tries - misses}
    now = AT + timedelta(seconds=elapsed)
    usable = elapsed < ttl and misses < tries
    if usable:
        assert open_code(record, at=now) is record
    else:
        with pytest.raises(NoCodeError):
            open_code(record, at=now)
    if elapsed < cool_down:
        with pytest.raises(ResendTooSoonError) as refused:
            check_resend(record, at=now)
        assert 1 <= refused.value.retry_after <= cool_down + 1
    else:
        check_resend(record, at=now)


@given(st.lists(st.sampled_from(["miss", "resend", "verify"]), max_size=12))
def test_a_login_code_is_used_at_most_once(steps: list[str]) -> None:
    session = AuthenticationSession.start(
        session_id=uuid4(),
        org_id=uuid4(),
        user_id="alice",
        context={},
        operation=None,
        risk={"level": "low"},
        required_aal=2,
        methods=["sms"],
        primary_factor_verified=True,
        max_attempts=100,
        ttl=timedelta(minutes=5),
        at=AT,
    )
    now, verified = AT, 0  # verifications of the code sent last
    session.send_code(_record(300, 3, 0), at=now)
    for step in steps:
        now += timedelta(seconds=1)
        if session.status != "pending":
            break
        if step == "miss":
            session.miss_code("sms", at=now)
        elif step == "resend":
            fresh = _record(300, 3, 0) | {"expires_at": now + timedelta(minutes=5)}
            session.send_code(fresh, at=now)
            verified = 0
        else:
            try:
                session.open_code("sms", at=now)
            except NoCodeError:
                continue
            session.verify_factor("sms", uuid4(), at=now)
            verified += 1
            with pytest.raises(NoCodeError):
                session.open_code("sms", at=now)
    assert verified <= 1


def test_a_masked_address_shows_one_letter_of_each_part() -> None:
    assert mask_email("alice@example.com") == "a•••@e•••.com"
