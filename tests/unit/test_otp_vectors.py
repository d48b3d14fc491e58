"""The OTP adapter against RFC 4226 Appendix D, RFC 6238 Appendix B and oathtool."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.otp import PyOtpVerifier
from application.ports import OtpParameters
from tests.helpers import hotp

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "standards-vectors.json").read_text())
RFC4226 = VECTORS["rfc4226"]
RFC6238 = VECTORS["rfc6238"]
verifier = PyOtpVerifier()


def _at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


@pytest.mark.parametrize("vector", RFC4226["vectors"], ids=lambda v: f"count-{v['counter']}")
def test_hotp_matches_every_rfc4226_appendix_d_value(vector: dict) -> None:
    secret = bytes.fromhex(RFC4226["secret_hex"])
    params = OtpParameters("hotp", "SHA1", 6, 30)
    assert verifier.code_at(secret, vector["counter"], params=params) == vector["hotp"]
    found = verifier.match(secret, vector["hotp"], params=params, at=_at(0), earliest=0, window=9)
    assert found == vector["counter"]


def _rfc6238_cases() -> list[tuple[str, int, str]]:
    return [(row["algorithm"], row["unix_time"], row["totp"]) for row in RFC6238["vectors"]]


@pytest.mark.parametrize(("algorithm", "unix", "expected"), _rfc6238_cases())
def test_totp_matches_every_rfc6238_appendix_b_value(
    algorithm: str, unix: int, expected: str
) -> None:
    secret = bytes.fromhex(RFC6238["seeds"][algorithm]["hex"])
    params = OtpParameters("totp", algorithm, 8, 30)
    step = unix // 30
    assert (
        verifier.match(secret, expected, params=params, at=_at(unix), earliest=0, window=0) == step
    )
    six = OtpParameters("totp", algorithm, 6, 30)
    assert (
        verifier.match(secret, expected[-6:], params=six, at=_at(unix), earliest=0, window=0)
        == step
    )


def test_a_step_below_earliest_never_matches_so_a_code_is_single_use() -> None:
    secret = bytes.fromhex(RFC6238["seeds"]["SHA1"]["hex"])
    params = OtpParameters("totp", "SHA1", 8, 30)
    # RFC 6238 §5.2: accepted at t=59 (T=1), the same code at t=60 (T=2, inside ±1) fails.
    assert verifier.match(secret, "94287082", params=params, at=_at(59), earliest=0, window=1) == 1
    assert (
        verifier.match(secret, "94287082", params=params, at=_at(60), earliest=2, window=1) is None
    )


def test_drift_window_accepts_neighbouring_steps_and_no_further() -> None:
    secret = bytes.fromhex(RFC6238["seeds"]["SHA1"]["hex"])
    params = OtpParameters("totp", "SHA1", 8, 30)
    code_step_1 = "94287082"
    assert verifier.match(secret, code_step_1, params=params, at=_at(89), earliest=0, window=1) == 1
    assert (
        verifier.match(secret, code_step_1, params=params, at=_at(90), earliest=0, window=1) is None
    )


@settings(max_examples=200, deadline=None)
@given(
    key=st.binary(min_size=20, max_size=64),
    counter=st.integers(0, 2**40),
    digits=st.sampled_from([6, 8]),
    algorithm=st.sampled_from(["SHA1", "SHA256", "SHA512"]),
)
def test_adapter_agrees_with_an_independent_hmac_implementation(
    key: bytes, counter: int, digits: int, algorithm: str
) -> None:
    params = OtpParameters("hotp", algorithm, digits, 30)
    assert verifier.code_at(key, counter, params=params) == hotp(
        key, counter, digits=digits, algorithm=algorithm
    )


OATHTOOL = shutil.which("oathtool")


@pytest.mark.skipif(OATHTOOL is None, reason="oathtool is not installed (make system-deps)")
@pytest.mark.parametrize("algorithm", ["SHA1", "SHA256", "SHA512"])
@pytest.mark.parametrize("unix", [59, 1111111109, 1234567890, 2000000000, 20000000000])
def test_codes_from_oathtool_verify(algorithm: str, unix: int) -> None:
    key = bytes.fromhex(RFC6238["seeds"][algorithm]["hex"])
    code = subprocess.run(
        [OATHTOOL, f"--totp={algorithm}", "-d", "8", "-N", f"@{unix}", key.hex()],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    params = OtpParameters("totp", algorithm, 8, 30)
    assert (
        verifier.match(key, code, params=params, at=_at(unix), earliest=0, window=0) == unix // 30
    )


@pytest.mark.skipif(OATHTOOL is None, reason="oathtool is not installed (make system-deps)")
def test_hotp_codes_from_oathtool_verify_in_sequence() -> None:
    key = bytes.fromhex(RFC4226["secret_hex"])
    codes = subprocess.run(
        [OATHTOOL, "--hotp", "-w", "9", key.hex()], check=True, capture_output=True, text=True
    ).stdout.split()
    params = OtpParameters("hotp", "SHA1", 6, 30)
    earliest = 0
    for counter, code in enumerate(codes):
        found = verifier.match(key, code, params=params, at=_at(0), earliest=earliest, window=3)
        assert found == counter
        earliest = counter + 1
