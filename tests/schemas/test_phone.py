"""The plain-number path of phone normalization against phonenumbers.parse, in every region."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from schemas.phone import normalize_phone, plain_e164

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
# Every example number phonenumbers ships (each region, each type): real numbering plans, trunk
# prefixes, carrier codes and prefix transforms included.
EXAMPLES = sorted({
    (region, phonenumbers.national_significant_number(number), number.country_code)
    for region in REGIONS
    for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE,
                 PhoneNumberType.PREMIUM_RATE, PhoneNumberType.VOIP, PhoneNumberType.UAN)
    if (number := phonenumbers.example_number_for_type(region, kind)) is not None
})


def parsed(value: str, region: str | None) -> str | None:
    """What phonenumbers' generic parser makes of `value`: E.164 when valid, else None."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def assert_agrees(value: str, region: str | None) -> None:
    plain = plain_e164(value, region)
    assert plain is None or plain == parsed(value, region), (value, region)


@settings(max_examples=1500)
@given(st.sampled_from(EXAMPLES), st.integers(0, 9999), st.integers(1, 4), st.sampled_from(REGIONS),
       st.sampled_from([PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.NATIONAL]))
def test_plain_path_agrees_with_parse_on_numbers_like_every_example(sample, tail, width, other_region, style):
    region, nsn, country_code = sample
    # The example with its last digits changed: valid or not, as real input is.
    digits = nsn[:-width] + str(tail).zfill(width)[-width:] if len(nsn) > width else nsn
    try:
        number = phonenumbers.parse(f"+{country_code}{digits}", None)
    except phonenumbers.NumberParseException:
        return
    text = phonenumbers.format_number(number, style)
    for text_variant in (text, text.replace(" ", "-"), text.replace(" ", "").replace("-", "")):
        assert_agrees(text_variant, region)
        assert_agrees(text_variant, other_region)


@settings(max_examples=1500)
@given(st.text("0123456789 -+", max_size=22),
       st.sampled_from([*REGIONS, *(r.lower() for r in REGIONS), None]))
@example("00821012345678", "KR")  # an IDD prefix: an international number for parse
@example("821012345678", "KR")  # the country code without +
@example("0111512345678", "AR")  # a trunk prefix that parse rewrites
@example("010-1234-5678", "kr")  # parse knows no region "kr"
def test_plain_path_agrees_with_parse_on_any_digits(text, region):
    assert_agrees(text, region)


@pytest.mark.parametrize(("value", "region"), [
    ("010-1234-5678", "KR"), ("01012345678", "KR"), ("02 312 3456", "KR"),
    ("+821012345678", None), ("+82 10-1234-5678", "US"), ("+12025550143", "KR"), ("202-555-0143", "US"),
])
def test_plain_numbers_skip_the_generic_parser(value, region):
    # The plain path is the speed of ingest; a change that loses it should fail here, not in a bench.
    assert plain_e164(value, region) == parsed(value, region) is not None


def test_numbers_only_parse_can_read_still_normalize():
    assert normalize_phone("+39 06 1234 5678", "KR") == "+390612345678"  # Italy keeps its leading zero
    assert normalize_phone("(010) 1234.5678", "KR") == "+821012345678"
    assert normalize_phone("001 1 202 555 0143", "KR") == "+12025550143"  # through an IDD prefix (001)
    assert normalize_phone("＋８２ １０ １２３４ ５６７８", None) == "+821012345678"  # full-width
