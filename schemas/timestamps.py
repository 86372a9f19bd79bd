"""Timestamps in the contact schema: RFC 3339 text with an offset in, RFC 3339 UTC ending in `Z` out.

pydantic on its own reads a number as seconds since 1970 (`occurred_at: 5` became
1970-01-01T00:00:05Z) and a string of digits the same way; an integrator who sent milliseconds,
or a field that was never filled in, was stored without a word. Here anything but RFC 3339 text (or
an aware datetime from Python code) is refused, naming the field. A timestamp is kept in UTC, so it
is written with `Z` whatever offset it came in with, and each JSON answer has one format (the instant
is the same; the sender's offset is not kept).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

# RFC 3339 section 5.6 date-time; its note allows a space, or a lower-case t, for the `T`.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
EXAMPLE = "2026-11-23T10:00:00+09:00"


def rfc3339(value: datetime) -> str:
    """`value` in UTC as RFC 3339 ending in `Z` (a naive value is taken to be UTC already)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat() + "Z"


def _rfc3339_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        message = f"must be an RFC 3339 date-time string with an offset, e.g. {EXAMPLE}; got "
        # pydantic reports a ValueError as the field's error; a TypeError would escape it as a crash.
        raise ValueError(message + ("a number" if number else type(value).__name__))  # noqa: TRY004
    if not _RFC3339.fullmatch(value):
        raise ValueError(f"must be an RFC 3339 date-time with seconds and an offset (Z or +hh:mm), e.g. {EXAMPLE}")
    return value


def _in_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# Kept in UTC from validation on, so pydantic's own serializer writes it with `Z`: a serializer in
# Python would cost every stored document and event a call per time (3 us an ingest, measured).
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_in_utc)]
