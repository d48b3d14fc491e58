"""Phone numbers parsed with phonenumbers, and the masks shown to users and admins."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.messaging.phones import MASK, PhonenumbersParser, mask_phone
from application.codes import mask_email
from application.ports import InvalidPhoneNumberError

parser = PhonenumbersParser()


def test_an_international_mobile_number_is_parsed_with_its_region_type_and_carrier() -> None:
    info = parser.parse("+44 7400 123456")
    assert info.e164 == "+447400123456"
    assert (info.region, info.country_code, info.number_type) == ("GB", 44, "mobile")
    assert info.carrier == "Three"


def test_a_national_number_needs_and_uses_the_default_region() -> None:
    info = parser.parse("030 123456", default_region="de")
    assert (info.e164, info.region, info.number_type, info.carrier) == (
        "+4930123456",
        "DE",
        "fixed_line",
        None,
    )


def test_us_numbers_are_fixed_line_or_mobile_without_a_carrier() -> None:
    info = parser.parse("+1 201-555-0123")
    assert (info.region, info.number_type, info.carrier) == ("US", "fixed_line_or_mobile", None)


def test_non_geographic_numbers_come_back_with_region_001() -> None:
    info = parser.parse("+800 1234 5678")
    assert (info.region, info.country_code, info.number_type) == ("001", 800, "toll_free")


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("", None, "empty"),
        ("hello", None, "does not look like a phone number"),
        ("07400 123456", None, "country calling code"),
        ("+44 740", None, "too short"),
        ("+44 7400 12", None, "incomplete"),
        ("+44 7400 1234567890", None, "too long"),
        ("+44 7400 123456 ext. 12", None, "extension"),
        ("+1" + "2" * 80, None, "longer than"),
    ],
)
def test_invalid_numbers_are_refused_with_a_clear_reason_that_omits_the_number(
    raw: str, region: str | None, reason: str
) -> None:
    with pytest.raises(InvalidPhoneNumberError) as caught:
        parser.parse(raw, default_region=region)
    assert reason in str(caught.value)
    digits = "".join(c for c in raw if c.isdigit())
    assert not digits or digits not in str(caught.value)


def test_number_types_use_the_ports_names() -> None:
    premium = phonenumbers.example_number_for_type("GB", phonenumbers.PhoneNumberType.PREMIUM_RATE)
    voip = phonenumbers.example_number_for_type("GB", phonenumbers.PhoneNumberType.VOIP)
    assert premium is not None and voip is not None
    e164 = phonenumbers.PhoneNumberFormat.E164
    assert parser.parse(phonenumbers.format_number(premium, e164)).number_type == "premium_rate"
    assert parser.parse(phonenumbers.format_number(voip, e164)).number_type == "voip"


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+447400123456", "+44 •••• ••3456"),
        ("+4915123456789", "+49 ••••• ••6789"),
        ("+12015550123", "+1 •••• ••0123"),
        ("+3531234", "+353 ••34"),
        ("", "•••"),
    ],
)
def test_phone_masks_show_the_country_code_and_the_last_digits(e164: str, masked: str) -> None:
    assert mask_phone(e164) == masked


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("alice@example.com", "a•••@e•••.com"),
        ("bob@mail.example.co.uk", "b•••@m•••.uk"),
        ("root@localhost", "r•••@l•••"),
        ("not-an-address", "•••"),
    ],
)
def test_email_masks_show_first_letters_and_the_top_level_domain(address: str, masked: str) -> None:
    assert mask_email(address) == masked


regions = sorted(phonenumbers.SUPPORTED_REGIONS)


@st.composite
def valid_numbers(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(regions))
    kind = draw(
        st.sampled_from(
            [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
        )
    )
    example = phonenumbers.example_number_for_type(region, kind)
    if example is None:
        example = phonenumbers.example_number(region)
    if example is None:
        return "+447400123456"
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)


@given(valid_numbers())
def test_a_phone_mask_reveals_only_the_country_code_and_at_most_four_final_digits(
    e164: str,
) -> None:
    masked = mask_phone(e164)
    number = phonenumbers.parse(e164)
    country = str(number.country_code)
    assert masked.startswith(f"+{country} ")
    shown = "".join(c for c in masked[len(country) + 1 :] if c.isdigit())
    national = e164[len(country) + 1 :]
    assert 2 <= len(shown) <= 4
    assert national.endswith(shown)
    assert masked.count(MASK) == len(national) - len(shown)


@given(st.text(max_size=40))
def test_a_phone_mask_never_fails_and_never_shows_more_than_four_digits(raw: str) -> None:
    masked = mask_phone(raw)
    assert sum(c.isdigit() for c in masked.split(" ", 1)[-1]) <= 4


local_parts = st.text(
    alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters=".-_+"),
    min_size=1,
    max_size=30,
)
labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)


@given(local_parts, st.lists(labels, min_size=2, max_size=4))
def test_an_email_mask_keeps_two_letters_and_the_tld_and_hides_lengths(
    local: str, domain_labels: list[str]
) -> None:
    address = f"{local}@{'.'.join(domain_labels)}"
    masked = mask_email(address)
    assert masked == f"{local[0]}•••@{domain_labels[0][0]}•••.{domain_labels[-1]}"
    longer = f"{local}{local}@{domain_labels[0]}{domain_labels[0]}.{domain_labels[-1]}"
    assert len(mask_email(longer)) == len(masked)


@given(st.text(max_size=60))
def test_an_email_mask_never_fails(raw: str) -> None:
    assert MASK in mask_email(raw)


def test_a_parsed_number_carries_its_mask() -> None:
    info = PhonenumbersParser().parse("+971501234567")
    assert info.masked == mask_phone(info.e164) == "+971 ••• ••4567"
