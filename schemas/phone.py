"""Phone and fax numbers to E.164: phonenumbers decides, its generic parser only where it is needed.

phonenumbers.parse reads anything a person may type (letters, extensions, IDD prefixes, carrier
codes, full-width digits) in pure Python. Under bench/ingest.py that was 18% of the hub's CPU per
interaction (paired runs with and without it). Most numbers arrive plain: a provider's E.164
(+821012345678) or a national number in ASCII digits with spaces or hyphens (010-1234-5678). For
those, `plain_e164` takes the steps parse would take for that shape, from phonenumbers' own
metadata; validity (is_valid_number) stays phonenumbers' call. Wherever parse could do something
else (an IDD prefix, the country code written without +, carrier codes, prefix transforms, a
leading zero) it answers None and parse decides. tests/schemas/test_phone.py holds the two equal
across every region phonenumbers knows.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber, re_util

# phonenumbers compiles each metadata pattern through re.compile on every check unless told to
# keep them (its RegexCache); re's own cache lookup cost a quarter of is_valid_number (6.5 -> 4.7 us).
re_util.enable_pattern_cache()

# ASCII digits with single spaces or hyphens between them, after an optional +.
_PLAIN = re.compile(r"\+?[0-9]+(?:[ -][0-9]+)*")
# The longest E.164 number is 15 digits; phonenumbers allows 17 for the national part.
_MAX_DIGITS = 20


@functools.lru_cache(maxsize=65536)
def normalize_phone(value: str, default_region: str | None) -> str:
    """E.164 form; numbers without a country code are read in `default_region` (e.g. KR).

    Cached: the same customers' numbers recur all day.
    """
    plain = plain_e164(value, default_region)
    if plain is not None:
        return plain
    try:
        number = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException as exc:
        if default_region is None and exc.error_type == exc.INVALID_COUNTRY_CODE:
            raise ValueError("phone number needs a country code (no default region set)") from None
        raise ValueError(f"not a phone number: {exc._msg}") from None
    # Valid, not merely possible: a possible-but-invalid number can re-normalize to a different
    # string (found by the property tests), and this value is the key identities are joined on.
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class _Prefixes:
    """What parse consults in a numbering plan's metadata before it validates."""

    country_code: int
    calling_code: str  # the country code as written after +
    international: re.Pattern[str] | None  # the IDD prefix dialled before a country code (KR: 00...)
    national: re.Pattern[str] | None  # the trunk prefix dialled within the country (KR: 0)
    transforms: bool  # the plan rewrites its national prefix (AR, MX...): parse's job

    @classmethod
    def of(cls, metadata: PhoneMetadata) -> _Prefixes:
        def compiled(pattern: str | None) -> re.Pattern[str] | None:
            return re.compile(pattern) if pattern else None

        return cls(metadata.country_code, str(metadata.country_code),
                   compiled(metadata.international_prefix), compiled(metadata.national_prefix_for_parsing),
                   bool(metadata.national_prefix_transform_rule))

    def national_number(self, digits: str) -> str | None:
        """`digits` without the national prefix, as parse strips it; None where parse might not."""
        if self.national is None:
            return digits
        match = self.national.match(digits)
        if match is None:
            return digits
        if self.transforms or match.lastindex is not None:
            return None  # a rewritten prefix, or a carrier code in one of its groups
        # parse strips the prefix unless what is left is no possible number; the result is then
        # checked for validity, which implies both.
        return digits[match.end():]


@functools.lru_cache(maxsize=512)
def _for_region(region: str) -> _Prefixes | None:
    metadata = PhoneMetadata.metadata_for_region(region, None)
    return None if metadata is None else _Prefixes.of(metadata)


@functools.lru_cache(maxsize=512)
def _for_calling_code(country_code: int) -> _Prefixes | None:
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    return None if metadata is None else _Prefixes.of(metadata)


def _split_country_code(digits: str) -> tuple[int, str] | None:
    # As parse reads a number after +: the first 1-3 digit prefix that is a calling code.
    if digits[:1] == "0":
        return None
    for length in (1, 2, 3):
        code = int(digits[:length])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return code, digits[length:]
    return None


def plain_e164(value: str, region: str | None) -> str | None:
    """The E.164 form of a valid number written plainly, as phonenumbers.parse would give it.

    None when `value` is not plain, not valid, or something parse reads in its own way.
    """
    if not _PLAIN.fullmatch(value):
        return None
    digits = value.replace(" ", "").replace("-", "")
    if len(digits) > _MAX_DIGITS:
        return None
    if digits[0] == "+":
        split = _split_country_code(digits[1:])
        if split is None:
            return None
        prefixes = _for_calling_code(split[0])
        rest = split[1]
    else:
        if region is None:
            return None
        prefixes = _for_region(region)  # as parse: "kr" is no region
        # parse reads an IDD prefix (00 82 ...) or the country code without + (82 10 ...) as
        # the start of an international number.
        if prefixes is None or digits.startswith(prefixes.calling_code) or (
            prefixes.international is not None and prefixes.international.match(digits)
        ):
            return None
        rest = digits
    if prefixes is None:
        return None
    national = prefixes.national_number(rest)
    # A leading zero kept in the national number (Italy) is stored apart from its value.
    if not national or national[0] == "0":
        return None
    number = PhoneNumber(country_code=prefixes.country_code, national_number=int(national))
    if not phonenumbers.is_valid_number(number):
        return None
    return f"+{prefixes.calling_code}{national}"
