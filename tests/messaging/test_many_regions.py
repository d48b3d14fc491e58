"""A hundred sends to mobile numbers of many regions: parsed, routed and in the right language."""

from __future__ import annotations

import json
from pathlib import Path

import phonenumbers

from adapters.messaging.console import ConsoleProvider
from adapters.messaging.phones import PhonenumbersParser
from adapters.messaging.routing import RoutedCodeSender, RoutingRule
from adapters.messaging.templates import TemplateCatalogue
from application.ports import OutboundCode
from tests.messaging.conftest import CODE
from tests.messaging.test_templates import MARKERS

# Written by hand, independently of regions.toml: where a person there should be written to.
EXPECTED = {
    "DE": "de", "AT": "de", "CH": "de", "LI": "de", "FR": "fr", "SN": "fr", "CI": "fr",
    "BE": "nl", "NL": "nl", "SR": "nl", "ES": "es", "MX": "es", "AR": "es", "CO": "es",
    "BR": "pt", "PT": "pt", "AO": "pt", "MZ": "pt", "IT": "it", "SM": "it", "PL": "pl",
    "JP": "ja", "EG": "ar", "SA": "ar", "MA": "ar", "AE": "ar", "IQ": "ar", "US": "en",
    "GB": "en", "AU": "en", "NG": "en", "IN": "en", "CN": "en", "RU": "en", "TR": "en",
    "KR": "en", "SE": "en",
}  # fmt: skip


def mobile(region: str) -> str | None:
    """The region's example mobile number, when it is its own (Åland's example is Finnish)."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    if example is None or phonenumbers.region_code_for_number(example) != region:
        return None
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)


def test_a_hundred_sends_to_many_regions_are_parsed_routed_and_rendered_in_their_language(
    tmp_path: Path, catalogue: TemplateCatalogue
) -> None:
    others = [r for r in sorted(phonenumbers.SUPPORTED_REGIONS) if r not in EXPECTED]
    regions = [r for r in [*EXPECTED, *others] if mobile(r)][:100]
    assert len(regions) == 100 and set(EXPECTED) <= set(regions)

    sms_log, voice_log = tmp_path / "sms.log", tmp_path / "voice.log"
    sender = RoutedCodeSender(
        [
            ConsoleProvider(sms_log, name="sms-console", channels=frozenset({"sms"})),
            ConsoleProvider(voice_log, name="voice-console", channels=frozenset({"voice"})),
        ],
        templates=catalogue,
        # Gulf numbers are called, not texted: routing by region, as an operator might
        rules=[RoutingRule(("voice-console",), regions=frozenset({"AE", "SA"}))],
        default_order=["sms-console"],
    )
    parser = PhonenumbersParser()
    expected: dict[str, tuple[str, str]] = {}
    for i, region in enumerate(regions):
        raw = mobile(region)
        assert raw is not None
        info = parser.parse(raw)
        assert (info.region, info.e164) == (region, raw)
        locale = catalogue.choose(stored=None, accept_language=None, region=info.region)
        channel = "voice" if region in ("AE", "SA") else "sms"
        report = sender.send(
            OutboundCode(
                message_id=f"m{i}",
                channel=channel,
                to=info.e164,
                code=CODE,
                locale=locale,
                issuer="Acme",
                ttl_minutes=10,
                region=info.region,
                carrier=info.carrier,
            )
        )
        assert report.accepted_by is not None
        expected[info.e164] = (region, channel)

    lines = [
        json.loads(line) for log in (sms_log, voice_log) for line in log.read_text().splitlines()
    ]
    assert len(lines) == 100
    assert {line["to"] for line in lines} == set(expected)
    for line in lines:
        region, channel = expected[line["to"]]
        language = EXPECTED.get(region) or _language(catalogue, region)
        assert line["channel"] == channel and line["locale"] == language, region
        if channel == "sms":
            assert MARKERS[language] in line["text"] and CODE in line["text"], region
        else:
            assert line["text"].count("، ".join(CODE)) == 2, region


def _language(catalogue: TemplateCatalogue, region: str) -> str:
    language = catalogue.region_language(region)
    return language if language in catalogue.locales else "en"
