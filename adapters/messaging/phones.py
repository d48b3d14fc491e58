"""Phone numbers with `phonenumbers`, and masks that show a destination without revealing it."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult, carrier

from application.ports import InvalidPhoneNumberError, PhoneNumberInfo

MAX_INPUT_LENGTH = 64
MASK = "•"

_TYPES = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
    PhoneNumberType.UNKNOWN: "unknown",
}

_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: (
        "the country calling code is missing or unknown: write the number in international "
        "format (+ and the country code) or give a default region"
    ),
    NumberParseException.NOT_A_NUMBER: "this does not look like a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "the number is too short after the exit code",
    NumberParseException.TOO_SHORT_NSN: "the number is too short",
    NumberParseException.TOO_LONG: "the number is too long",
}

_LENGTH_ERRORS = {
    ValidationResult.TOO_SHORT: "the number is too short for its country",
    ValidationResult.TOO_LONG: "the number is too long for its country",
    ValidationResult.INVALID_LENGTH: "the number has the wrong length for its country",
    ValidationResult.INVALID_COUNTRY_CODE: "the country calling code is unknown",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "the number is incomplete (an area code missing?)",
}


class PhonenumbersParser:
    """`PhoneNumbers` on Google's libphonenumber metadata (the `phonenumbers` port).

    Error messages never repeat the number (it is personal data and messages get logged).
    Non-geographic numbers (+800 freephone, +881/+882 satellite and the like) are valid and come
    back with region "001", the code libphonenumber uses for them. The carrier is the number
    range's original allocation: after porting it is wrong, so it is a routing hint only."""

    def __init__(self, *, carrier_language: str = "en") -> None:
        self._language = carrier_language

    def parse(self, raw: str, *, default_region: str | None = None) -> PhoneNumberInfo:
        text = raw.strip()
        if not text:
            raise InvalidPhoneNumberError("the phone number is empty")
        if len(text) > MAX_INPUT_LENGTH:
            raise InvalidPhoneNumberError(
                f"the phone number is longer than {MAX_INPUT_LENGTH} characters"
            )
        region = default_region.upper() if default_region else None
        try:
            number = phonenumbers.parse(text, region)
        except NumberParseException as error:
            raise InvalidPhoneNumberError(
                _PARSE_ERRORS.get(error.error_type, "the phone number cannot be read")
            ) from None
        if number.extension:
            raise InvalidPhoneNumberError("numbers with an extension cannot receive codes")
        if not phonenumbers.is_valid_number(number):
            reason = phonenumbers.is_possible_number_with_reason(number)
            raise InvalidPhoneNumberError(
                _LENGTH_ERRORS.get(
                    reason, "the number is not in use in its country's numbering plan"
                )
            )
        name = carrier.name_for_number(number, self._language) or None
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return PhoneNumberInfo(
            e164=e164,
            region=phonenumbers.region_code_for_number(number) or "001",
            country_code=int(number.country_code or 0),
            number_type=_TYPES.get(phonenumbers.number_type(number), "unknown"),
            carrier=name,
            masked=mask_phone(e164),
        )


def _shown_digits(length: int) -> int:
    if length >= 9:
        return 4
    if length >= 7:
        return 3
    return min(2, length // 2)


def mask_phone(e164: str) -> str:
    """`+447400123456` -> `+44 •••• ••3456`: the country code and the last 2-4 digits only.

    Pure and total: for anything that is not a parseable number, at most its last two digits."""
    digits = "".join(c for c in e164 if c.isdigit())
    country = ""
    national = digits
    try:
        number = phonenumbers.parse("+" + digits, None)
    except NumberParseException:
        pass
    else:
        code = str(number.country_code)
        if digits.startswith(code):
            country, national = code, digits[len(code) :]
    shown = _shown_digits(len(national)) if country else min(2, len(national) // 2)
    masked = MASK * (len(national) - shown) + national[len(national) - shown :]
    if not masked:
        return MASK * 3
    body = " ".join(g for g in (masked[:-6], masked[-6:]) if g)
    return f"+{country} {body}" if country else f"+{body}"
